/// Asks a connection's handler to close it if it is idle, saying so first with an unsolicited
/// `FCGI_END_REQUEST` (`FCGI_OVERLOADED`): a web server that already sent its next request on it
/// then knows that request was not run and may send it again elsewhere.
struct ReclaimIdleConnection: Sendable {}
