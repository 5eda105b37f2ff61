async def test_servers_answer(pool, js):
    assert await pool.fetchval("SELECT count(*) FROM processing_logs") >= 0
    info = await js.stream_info("TRACKS")
    assert info.config.subjects == ["tracks.>"]
