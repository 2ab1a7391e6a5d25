/// A request the Hummingbird adapter cannot hand to the application.
public enum HummingbirdResponderError: Error, CustomStringConvertible, Sendable {
    /// The gateway context has no connection to build Hummingbird's `ApplicationRequestContextSource`
    /// from: a context made by hand without `channel:`. The gateway's own always have one.
    case noChannel

    public var description: String {
        switch self {
        case .noChannel: "the GatewayContext has no channel for the Hummingbird request context"
        }
    }
}
