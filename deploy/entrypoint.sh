#!/bin/sh
# The image's entrypoint: `docker run IMAGE web|worker|clock|release [ARGS...]` runs that line of
# the Procfile (read here at run time, so the image and Heroku never run different commands),
# with ARGS appended; anything else runs as given (`docker run IMAGE bridge jobs failed`).
set -eu
procfile="${PROCFILE:-/app/Procfile}"
[ "$#" -gt 0 ] || set -- web
case "$1" in
  *[!a-z0-9_-]*) command="" ;;  # not a process type name
  *) command=$(sed -n "s/^$1:[[:space:]]*//p" "$procfile" | head -n 1) ;;
esac
if [ -z "$command" ]; then
  exec "$@"
fi
shift
# sh -c parses the line as Heroku does (its quotes); `exec` lets the process replace this
# shell, so it receives `docker stop`'s SIGTERM itself.
exec /bin/sh -c "exec $command \"\$@\"" "$procfile" "$@"
