"""Live stream (CONTRACT §4): resumable positions, channels, the replay buffer and the
in-memory fan-out to connected SSE clients. No Faust, no aiohttp: the web views and the
broadcast follower are the only parts that touch I/O."""
