/// Tells a connection's handler that the supervisor gave up on the request holding slot `slot`
/// (request-timeout): the handler cancels its application's task and answers 504, or aborts the
/// connection when the response had begun. The handler checks again on its event loop that the
/// slot still holds that request.
struct CancelRequest: Sendable {
    let slot: Int
}
