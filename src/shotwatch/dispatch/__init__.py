"""Calls for service and alert channels behind one port."""
