import NIOCore

@testable import SwiftGateway

/// One input: the input is a whole `FCGI_PARAMS` stream. The name-value decoder and
/// `CGIEnvironment` (which scans the same stream without building strings) must agree on
/// whether it is valid and on its variables; what decodes must encode back and decode the same.
func fuzzNameValuePairs(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let stream = ByteBuffer(bytes: UnsafeBufferPointer(start: start, count: count))
    let pairs = try? FastCGINameValuePairs.decode(stream)
    let environment = try? CGIEnvironment(parameterStream: stream)
    precondition((pairs == nil) == (environment == nil), "the decoder and CGIEnvironment disagree")
    guard let pairs, let environment else { return 0 }

    // the application never sees the group's secret
    let visible = pairs.filter { $0.name != "SWIFT_GATEWAY_TOKEN" }
    precondition(environment.count == visible.count)
    for (index, pair) in zip(environment.indices, visible) {
        let variable = environment[index]
        precondition(variable.key == pair.name && variable.value == pair.value)
    }
    if let last = visible.last {
        precondition(environment[last.name] != nil)
    }

    var encoded = ByteBuffer()
    FastCGINameValuePairs.encode(pairs, into: &encoded)
    guard let again = try? FastCGINameValuePairs.decode(encoded) else {
        preconditionFailure("decoded pairs did not encode to a valid stream")
    }
    precondition(again.elementsEqual(pairs) { $0.name == $1.name && $0.value == $1.value })
    return 0
}
