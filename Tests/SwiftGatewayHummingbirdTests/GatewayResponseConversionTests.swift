import Hummingbird
import NIOCore
import XCTest

@testable import SwiftGateway
@testable import SwiftGatewayHummingbird

final class GatewayResponseConversionTests: XCTestCase {
    func testAShortBodyIsCollectedIntoOneBufferWithItsLength() async throws {
        let response = Response(
            status: .created, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "made"))
        )
        let converted = try await GatewayResponse(response)
        XCTAssertEqual(converted.status, .created)
        XCTAssertEqual(converted.headerFields[.contentType], "text/plain")
        XCTAssertEqual(converted.headerFields[.contentLength], "4")
        let body = try await bodyChunks(of: converted)
        XCTAssertFalse(body.streamed)
        XCTAssertEqual(text(body.chunks), "made")
    }

    func testAnEmptyBodyIsEmpty() async throws {
        let converted = try await GatewayResponse(Response(status: .noContent))
        let body = try await bodyChunks(of: converted)
        XCTAssertFalse(body.streamed)
        XCTAssertEqual(body.chunks.map(\.readableBytes), [0])
    }

    func testAShortWrittenBodyIsCollectedWithoutItsTrailers() async throws {
        let response = Response(
            status: .ok,
            body: .init(contentLength: 6) { writer in
                try await writer.write(ByteBuffer(string: "abc"))
                try await writer.write(ByteBuffer(string: "def"))
                try await writer.finish([.init("X-Trailer")!: "dropped"])
            })
        let converted = try await GatewayResponse(response)
        XCTAssertNil(converted.headerFields[.init("X-Trailer")!])
        let body = try await bodyChunks(of: converted)
        XCTAssertFalse(body.streamed)
        XCTAssertEqual(text(body.chunks), "abcdef")
    }

    func testABodyOfUnknownLengthIsStreamedChunkByChunk() async throws {
        let response = Response(
            status: .ok,
            body: .init { writer in
                for n in 1...3 { try await writer.write(ByteBuffer(string: "part \(n);")) }
                try await writer.finish(nil)
            })
        let converted = try await GatewayResponse(response)
        XCTAssertNil(converted.headerFields[.contentLength])
        let body = try await bodyChunks(of: converted)
        XCTAssertTrue(body.streamed)
        XCTAssertEqual(body.chunks.map { String(buffer: $0) }, ["part 1;", "part 2;", "part 3;"])
    }

    func testALongBodyOfKnownLengthIsStreamedWithItsLength() async throws {
        let size = GatewayResponse.hummingbirdCollectedBodyLimit + 1
        let response = Response(
            status: .ok,
            body: .init(contentLength: size) { writer in
                try await writer.write(ByteBuffer(repeating: 1, count: size - 1))
                try await writer.write(ByteBuffer(repeating: 2, count: 1))
                try await writer.finish(nil)
            })
        let converted = try await GatewayResponse(response)
        XCTAssertEqual(converted.headerFields[.contentLength], String(size))
        let body = try await bodyChunks(of: converted)
        XCTAssertTrue(body.streamed)
        XCTAssertEqual(body.chunks.map(\.readableBytes), [size - 1, 1])
    }

    func testTheRequestKeepsTheGatewaysHeadAndItsWholePath() async throws {
        let (gateway, _) = gatewayRequest(.put, "/app/items/7?sort=up", headers: [.accept: "text/plain"])
        let request = Request(gateway)
        XCTAssertEqual(request.method, .put)
        XCTAssertEqual(request.uri.path, "/app/items/7")
        XCTAssertEqual(request.uri.query, "sort=up")
        XCTAssertEqual(request.headers[.accept], "text/plain")
    }
}
