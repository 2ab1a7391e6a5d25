import HTTPTypes
import NIOCore

@testable import SwiftGateway

/// One input: the input is a whole `FCGI_PARAMS` stream, made into the request head an
/// application sees, as a worker makes it. A stream that decodes either gives a head whose fields
/// are valid HTTP (HTTPTypes checks names and values as it builds them) or a
/// `GatewayRequestError`; nothing else may happen.
func fuzzCGIRequest(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let stream = ByteBuffer(bytes: UnsafeBufferPointer(start: start, count: count))
    guard let environment = try? CGIEnvironment(parameterStream: stream) else { return 0 }
    guard let request = try? HTTPRequest(cgiEnvironment: environment) else { return 0 }
    // a path there is, though it may be empty: HTTPTypes turns control characters into spaces and
    // trims them, so a REQUEST_URI of control characters alone becomes "" (the module never sends
    // one: Apache refuses them in the request line)
    precondition(request.path != nil)
    precondition(request.scheme == "http" || request.scheme == "https")
    for field in request.headerFields {
        precondition(!field.name.rawName.isEmpty)
        precondition(HTTPField.isValidValue(field.value))
    }
    return 0
}
