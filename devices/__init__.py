"""Device drivers, codecs and simulated devices for EdgeTwin (depends on ``edgetwin``'s core types)."""
