"""gunicorn settings of the web process (Procfile, image), read from the environment."""

import os

# Heroku assigns PORT to each dyno; the image publishes 5000.
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# Heroku's Python buildpack sets WEB_CONCURRENCY from the dyno's memory; 2 suits a small machine.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Heroku's router answers 503 after 30 s: kill and replace a worker stuck for 25 s before that
# (a webhook is answered in milliseconds; only a hung Redis call could take this long).
timeout = 25
# On a restart Heroku sends SIGTERM and SIGKILL 30 s later: requests in flight get 20 s.
graceful_timeout = 20
# gevent: each connection is a greenlet, so clients that send slowly or hold a connection idle
# cost a little memory, not a worker (two sync workers were blocked by two slow clients, health
# checks included). Up to worker_connections at once per worker; beyond, new ones wait.
worker_class = "gevent"
worker_connections = 1000
# Idle seconds a kept-alive client connection stays open between requests.
keepalive = 5
# The heartbeat file on tmpfs: on a container's overlay filesystem its writes can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No control socket (gunicornc, gunicorn 25.1+): unused, and it would live under $HOME, which the
# image's user has none of.
control_socket_disable = True
# No access log: Heroku's router already logs each request (path, status, time) and the bridge
# logs each webhook's outcome with its request id. `GUNICORN_CMD_ARGS=--access-logfile=-` turns
# it on, e.g. in a container with no router in front.
accesslog = None
# Trust X-Forwarded-For/-Proto from any peer only on a Heroku dyno (DYNO is set there), whose
# only client is Heroku's router; elsewhere gunicorn's default (FORWARDED_ALLOW_IPS, else
# loopback only), since a published container port can be reached by anyone.
if "DYNO" in os.environ and "FORWARDED_ALLOW_IPS" not in os.environ:
    forwarded_allow_ips = "*"
