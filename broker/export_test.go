package broker

// OutboxLimit is how many events may wait for the dispatcher before publishers wait.
const OutboxLimit = outboxLimit
