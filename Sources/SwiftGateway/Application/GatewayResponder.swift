/// The application: answers one request at a time per call, possibly many calls at once.
public protocol GatewayResponder: Sendable {
    /// Runs on the worker's event loop, where the request arrived (the caller's executor).
    nonisolated(nonsending) func respond(
        to request: GatewayRequest, context: GatewayContext
    ) async throws -> GatewayResponse
}
