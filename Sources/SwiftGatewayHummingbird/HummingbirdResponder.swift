import Hummingbird
import Logging
import SwiftGateway

/// A Hummingbird responder (`router.buildResponder()`, an application's `responder`) as the
/// gateway's application: each request becomes a Hummingbird `Request` with its body streamed
/// from the gateway, and its `Response` goes back with its body streamed to the gateway.
///
/// Errors the responder throws reach the gateway unchanged, as from any other application: a
/// cancelled request (`request-timeout`) ends as the gateway ends it, anything else is logged
/// (SG1117) and answered 500. Hummingbird's router has already made a response of every
/// `HTTPResponseError` (`HTTPError`, 404 for an unknown route, 413 for a body over `maxUploadSize`).
public struct HummingbirdResponder<Responder: HTTPResponder>: GatewayResponder
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    public let responder: Responder

    public init(_ responder: Responder) {
        self.responder = responder
    }

    public nonisolated(nonsending) func respond(
        to request: GatewayRequest, context: GatewayContext
    ) async throws -> GatewayResponse {
        guard let channel = context.channel else { throw HummingbirdResponderError.noChannel }
        var logger = context.logger
        // Hummingbird's `context.id` reads this key: Apache's id of the request, as in its logs.
        logger[metadataKey: "hb.request.id"] =
            context.requestID.isEmpty ? .stringConvertible(RequestID()) : .string(context.requestID)
        let applicationContext = Responder.Context(source: .init(channel: channel, logger: logger))
        return try await Gateway.$requestEnvironment.withValue(request.environment) {
            let response = try await self.responder.respond(to: Request(request), context: applicationContext)
            return try await GatewayResponse(response)
        }
    }
}
