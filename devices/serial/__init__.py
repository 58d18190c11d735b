"""USB-serial devices: the framed protocol (``devices/SERIAL_PROTOCOL.md``), a sans-I/O framer,
a reliable link with ACK/NAK and retransmission, and drivers for a CGM receiver and a pump bridge."""
