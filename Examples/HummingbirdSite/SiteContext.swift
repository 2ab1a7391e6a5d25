import Hummingbird
import NIOCore
import SwiftGatewayHummingbird

/// The application's own request context: what `GreetingMiddleware` decides, for the handlers.
struct SiteContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var greeting = "Hello"
    /// The connection the request came on: the client's when Hummingbird serves by itself,
    /// Apache's under the gateway.
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The client's address: under the gateway the CGI variable, by itself the connection's peer.
    var clientAddress: String {
        Gateway.requestEnvironment?["REMOTE_ADDR"] ?? self.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    /// JSON bodies over 64 KiB are answered 413 before a handler sees them.
    var maxUploadSize: Int { 64 * 1024 }
}
