import HTTPTypes
import XCTest

@testable import SwiftGateway

final class CGIResponseHeadTests: XCTestCase {
    func testSerializesStatusFieldsAndContentLength() {
        let response = GatewayResponse(status: .notFound, headerFields: [.contentType: "text/plain"])
        let buffer = CGIResponseHead.serialize(response, contentLength: 3, allocator: .init(), reservingBody: 0)
        XCTAssertEqual(
            String(buffer: buffer),
            "Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        )
    }

    func testCountsTheBlockExactly() {
        // Multi-byte values, a custom status, a long length, no fields: each byte counted once.
        var fields: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        fields[HTTPField.Name("X-Name")!] = "café ☕"
        let cases: [(GatewayResponse, Int?, String)] = [
            (
                GatewayResponse(status: .init(code: 599, reasonPhrase: "Custom Thing"), headerFields: fields),
                1_234_567_890,
                "Status: 599 Custom Thing\r\nContent-Type: text/plain; charset=utf-8\r\nX-Name: café ☕\r\nContent-Length: 1234567890\r\n\r\n"
            ),
            (GatewayResponse(status: .noContent), nil, "Status: 204 No Content\r\n\r\n"),
            (GatewayResponse(status: .ok), 0, "Status: 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (GatewayResponse(status: .init(code: 7, reasonPhrase: "")), 10, "Status: 7 \r\nContent-Length: 10\r\n\r\n"),
        ]
        for (response, length, expected) in cases {
            let buffer = CGIResponseHead.serialize(
                response, contentLength: length, allocator: .init(), reservingBody: 100)
            XCTAssertEqual(String(buffer: buffer), expected)
            XCTAssertGreaterThanOrEqual(buffer.capacity, buffer.readableBytes + 100)
        }
        XCTAssertEqual([0, 9, 10, 99, 100, 1_000_000].map(CGIResponseHead.decimalDigits), [1, 1, 2, 2, 3, 7])
    }

    func testKeepsTheApplicationsContentLengthAndNeutralisesLineBreaksInValues() {
        var fields: HTTPFields = [.contentLength: "7"]
        fields[HTTPField.Name("X-Evil")!] = "a\r\nSet-Cookie: x=1"
        let response = GatewayResponse(status: .ok, headerFields: fields)
        let text = String(
            buffer: CGIResponseHead.serialize(response, contentLength: 3, allocator: .init(), reservingBody: 0))
        XCTAssertEqual(text.components(separatedBy: "Content-Length").count, 2)
        XCTAssertFalse(text.contains("\r\nSet-Cookie"))
    }
}
