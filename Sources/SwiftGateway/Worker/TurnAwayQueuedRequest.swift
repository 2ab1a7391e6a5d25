/// Asks a connection's handler to turn away its request waiting in the slots' queue, with
/// `FCGI_OVERLOADED`, because a sibling worker has room for it.
struct TurnAwayQueuedRequest: Sendable {}
