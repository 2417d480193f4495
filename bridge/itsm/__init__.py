"""The change systems' own APIs (ServiceNow, Jira): notes on the change, and their sandbox."""
