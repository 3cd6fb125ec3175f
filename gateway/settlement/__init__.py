"""Net settlement: obligations netted per cycle and currency into multilateral positions."""
