/// A request that cannot be turned into an `HTTPRequest`.
public struct GatewayRequestError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
