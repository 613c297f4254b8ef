"""Pure decisions about retention and holds: functions of values, no I/O."""
