"""The appliance around the app: systemd notifications, power commands and
what the admin menu shows of the machine. Imports nothing else of ours."""
