"""When issues go out: weekly slots, the scheduler's tick and the schedule commands."""
