/// `collect(upTo:)` met more bytes than allowed.
public struct GatewayRequestBodyTooLarge: Error, CustomStringConvertible, Sendable {
    public var maximumLength: Int
    public var description: String { "request body longer than \(maximumLength) bytes" }
}
