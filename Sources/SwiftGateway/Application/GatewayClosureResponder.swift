/// A responder made of a closure, for `Gateway.run { request, context in … }`.
public struct GatewayClosureResponder: GatewayResponder {
    private let handler: @Sendable (GatewayRequest, GatewayContext) async throws -> GatewayResponse

    public init(_ handler: @escaping @Sendable (GatewayRequest, GatewayContext) async throws -> GatewayResponse) {
        self.handler = handler
    }

    public nonisolated(nonsending) func respond(
        to request: GatewayRequest, context: GatewayContext
    ) async throws -> GatewayResponse {
        try await self.handler(request, context)
    }
}
