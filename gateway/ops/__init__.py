"""Operations: MQTT events and commands, Prometheus metrics, health, structured logs."""
