"""The state DB (schema, migrations, the verbs that change it) and, later, the
sync daemon that carries it to and from the central queue server."""
