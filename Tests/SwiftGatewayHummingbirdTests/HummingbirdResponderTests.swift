import FoundationEssentials
import Hummingbird
import NIOCore
import XCTest

@testable import SwiftGateway
@testable import SwiftGatewayHummingbird

/// A context of the application's own, filled by a middleware.
private struct TestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var mark = "none"
    init(source: ApplicationRequestContextSource) { self.coreContext = .init(source: source) }
    var maxUploadSize: Int { 1024 }
}

private struct MarkingMiddleware: RouterMiddleware {
    typealias Context = TestContext
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        var context = context
        context.mark = "marked"
        var response = try await next(request, context)
        response.headers[.init("X-Mark")!] = context.mark
        return response
    }
}

private struct Pair: ResponseCodable, Equatable {
    var name: String
    var count: Int
}

private struct Unexpected: Error {}

final class HummingbirdResponderTests: XCTestCase {
    private func responder() -> HummingbirdResponder<RouterResponder<TestContext>> {
        let router = Router(context: TestContext.self)
        router.add(middleware: MarkingMiddleware())
        router.get("/items/:id") { _, context in
            "item \(try context.parameters.require("id", as: Int.self)) \(context.mark) \(context.id)"
        }
        router.post("/pairs") { request, context in
            var pair = try await request.decode(as: Pair.self, context: context)
            pair.count += 1
            return pair
        }
        router.post("/count") { request, _ in
            var chunks = 0
            var bytes = 0
            for try await chunk in request.body {
                chunks += 1
                bytes += chunk.readableBytes
            }
            return "\(chunks) \(bytes)"
        }
        router.post("/first") { request, _ in
            var iterator = request.body.makeAsyncIterator()
            let first = try await iterator.next()
            return "\(first?.readableBytes ?? 0)"
        }
        router.get("/client") { _, _ in Gateway.requestEnvironment?["REMOTE_ADDR"] ?? "none" }
        router.get("/teapot") { _, _ -> String in throw HTTPError(.conflict, message: "short and stout") }
        router.get("/unexpected") { _, _ -> String in throw Unexpected() }
        router.get("/cancelled") { _, _ -> String in throw CancellationError() }
        return HummingbirdResponder(router.buildResponder())
    }

    func testAPathParameterReachesTheHandlerThroughTheMiddlewareWithTheGatewaysRequestID() async throws {
        let (request, _) = gatewayRequest(.get, "/items/42?x=1")
        let response = try await self.responder().respond(to: request, context: gatewayContext(requestID: "Zq3"))
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headerFields[.init("X-Mark")!], "marked")
        XCTAssertEqual(response.headerFields[.contentLength], "18")
        let body = try await bodyChunks(of: response)
        XCTAssertFalse(body.streamed)
        XCTAssertEqual(text(body.chunks), "item 42 marked Zq3")
    }

    func testAJSONBodyIsDecodedAndTheAnswerEncoded() async throws {
        let (request, _) = gatewayRequest(
            .post, "/pairs", headers: [.contentType: "application/json"],
            body: [ByteBuffer(string: #"{"name":"#), ByteBuffer(string: #""tea","count":2}"#)])
        let response = try await self.responder().respond(to: request, context: gatewayContext())
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headerFields[.contentType], "application/json; charset=utf-8")
        let body = try await bodyChunks(of: response)
        let pair = try JSONDecoder().decode(Pair.self, from: Data(body.chunks[0].readableBytesView))
        XCTAssertEqual(pair, Pair(name: "tea", count: 3))
    }

    func testABodyOverTheContextsUploadLimitIs413() async throws {
        let (request, _) = gatewayRequest(
            .post, "/pairs", headers: [.contentType: "application/json"],
            body: [ByteBuffer(repeating: UInt8(ascii: " "), count: 2048)])
        let response = try await self.responder().respond(to: request, context: gatewayContext())
        XCTAssertEqual(response.status, .contentTooLarge)
    }

    func testTheRequestBodyArrivesInTheGatewaysChunks() async throws {
        let chunks = (0..<5).map { _ in ByteBuffer(repeating: 7, count: 1000) }
        let (request, _) = gatewayRequest(.post, "/count", body: chunks)
        let response = try await self.responder().respond(to: request, context: gatewayContext())
        let body = try await bodyChunks(of: response)
        XCTAssertEqual(text(body.chunks), "5 5000")
    }

    func testTheRequestBodyIsPulledOnlyAsTheApplicationReads() async throws {
        let (request, source) = gatewayRequest(
            .post, "/first", body: (0..<4).map { _ in ByteBuffer(repeating: 1, count: 10) })
        let response = try await self.responder().respond(to: request, context: gatewayContext())
        let body = try await bodyChunks(of: response)
        XCTAssertEqual(text(body.chunks), "10")
        XCTAssertEqual(source?.pulled, 1)
    }

    func testRouterErrorsBecomeTheirResponses() async throws {
        let responder = self.responder()
        let (missing, _) = gatewayRequest(.get, "/nowhere")
        let notFound = try await responder.respond(to: missing, context: gatewayContext())
        XCTAssertEqual(notFound.status, .notFound)
        let (teapot, _) = gatewayRequest(.get, "/teapot")
        let thrown = try await responder.respond(to: teapot, context: gatewayContext())
        XCTAssertEqual(thrown.status, .conflict)
        let thrownBody = try await bodyChunks(of: thrown)
        XCTAssertTrue(text(thrownBody.chunks).contains("short and stout"), text(thrownBody.chunks))
        let (notANumber, _) = gatewayRequest(.get, "/items/abc")
        let badRequest = try await responder.respond(to: notANumber, context: gatewayContext())
        XCTAssertEqual(badRequest.status, .badRequest)
    }

    func testOtherErrorsAndCancellationReachTheGatewayUnchanged() async throws {
        let responder = self.responder()
        let (unexpected, _) = gatewayRequest(.get, "/unexpected")
        do {
            _ = try await responder.respond(to: unexpected, context: gatewayContext())
            XCTFail("no error")
        } catch is Unexpected {}
        let (cancelled, _) = gatewayRequest(.get, "/cancelled")
        do {
            _ = try await responder.respond(to: cancelled, context: gatewayContext())
            XCTFail("no error")
        } catch is CancellationError {}
    }

    func testTheRequestsCGIVariablesAreThereWhileItIsServed() async throws {
        let (request, _) = gatewayRequest(.get, "/client", environment: ["REMOTE_ADDR": "192.0.2.7"])
        let response = try await self.responder().respond(to: request, context: gatewayContext())
        let body = try await bodyChunks(of: response)
        XCTAssertEqual(text(body.chunks), "192.0.2.7")
        XCTAssertNil(Gateway.requestEnvironment)
    }

    func testAContextWithoutAChannelIsRefused() async throws {
        let (request, _) = gatewayRequest(.get, "/items/1")
        let context = GatewayContext(logger: .init(label: "test"), group: "site", requestID: "1")
        do {
            _ = try await self.responder().respond(to: request, context: context)
            XCTFail("no error")
        } catch HummingbirdResponderError.noChannel {}
    }
}
