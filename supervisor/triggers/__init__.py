"""What asks the supervisor to act: the inbox the main loop reads (``inbox``), the file
watcher (``watch``) and the control socket server (``control``). Signal handlers,
threads and sockets only enqueue here."""
