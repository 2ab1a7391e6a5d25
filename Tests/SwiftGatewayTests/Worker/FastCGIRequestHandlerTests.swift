import Logging
import NIOCore
import NIOEmbedded
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

/// The connection life cycle of a worker: requests one after another on a kept-alive
/// connection, reclaiming an idle one, and the slot it holds.
final class FastCGIRequestHandlerTests: XCTestCase {
    private let parameters: [(name: String, value: String)] = [
        (name: "REQUEST_METHOD", value: "GET"),
        (name: "REQUEST_URI", value: "/hello"),
    ]

    /// The connections a test made. Each is finished in `tearDown` and its loop shut down: a
    /// channel and its pipeline hold each other until it is finished, and a task still scheduled
    /// on the loop (the queue's watch, which runs as the loop's time advances) holds the loop.
    private var channels: [NIOAsyncTestingChannel] = []

    override func tearDown() async throws {
        for channel in self.channels {
            _ = try? await channel.finish(acceptAlreadyClosed: true)
            await channel.testingEventLoop.shutdownGracefully()
        }
        self.channels = []
        try await super.tearDown()
    }

    func makeConnection(
        slots: ConnectionSlots,
        readingBody: Bool = false,
        routedRequests: RoutedRequestCount? = nil,
        routeCookie: RouteCookie? = nil,
        response: @escaping @Sendable () -> GatewayResponse = { GatewayResponse(body: .init(string: "Hello world!\n")) }
    ) async throws -> NIOAsyncTestingChannel {
        try await self.makeConnection(slots: slots, routedRequests: routedRequests, routeCookie: routeCookie) {
            request in
            if readingBody { for try await _ in request.body {} }
            return response()
        }
    }

    /// - Parameters:
    ///   - startsOnGlobalPool: the application's tasks as with `executor=thread-pool`.
    ///   - routedRequests: a connection to the worker's own socket (`affinity-cookie=`).
    ///   - routeCookie: what a connection to the group socket sets (`affinity-cookie=`).
    func makeConnection(
        slots: ConnectionSlots, startsOnGlobalPool: Bool = false, routedRequests: RoutedRequestCount? = nil,
        routeCookie: RouteCookie? = nil,
        respond: @escaping @Sendable (GatewayRequest) async throws -> GatewayResponse
    ) async throws -> NIOAsyncTestingChannel {
        let runner = FastCGIApplicationRunner(
            responder: GatewayClosureResponder { request, _ in try await respond(request) },
            group: "test", token: nil, logger: Logger(label: "test"), executor: nil,
            startsOnGlobalPool: startsOnGlobalPool, routeCookie: routeCookie
        )
        if routedRequests == nil {
            XCTAssertTrue(slots.tryTake())
        } else {
            slots.takeRouted()
        }
        let channel = NIOAsyncTestingChannel()
        self.channels.append(channel)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandlers(
                FastCGIServerCodec(),
                FastCGIRequestHandler(
                    runner: runner, slots: slots, connectionID: slots.makeConnectionID(),
                    routedRequests: routedRequests)
            )
        }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9))
        return channel
    }

    /// A request whose `CONTENT_LENGTH` announces its body (none without one).
    func request(keepConnection: Bool, bodyBytes: Int = 0) -> ByteBuffer {
        self.request(
            keepConnection: keepConnection, bodyBytes: bodyBytes, announcedLength: bodyBytes > 0 ? bodyBytes : nil)
    }

    /// - Parameter announcedLength: `CONTENT_LENGTH`, or nil for none.
    private func request(keepConnection: Bool, bodyBytes: Int, announcedLength: Int?) -> ByteBuffer {
        var parameters = self.parameters
        if let length = announcedLength {
            parameters.append((name: "CONTENT_LENGTH", value: String(length)))
        }
        var body = [UInt8](repeating: 0x62, count: bodyBytes)[...]
        var stdin: [ByteBuffer] = []
        while !body.isEmpty {
            stdin.append(FastCGITestWire.record(.stdin, id: 1, Array(body.prefix(FastCGIRecord.maximumContentLength))))
            body = body.dropFirst(FastCGIRecord.maximumContentLength)
        }
        return FastCGITestWire.concatenate(
            [
                FastCGITestWire.begin(id: 1, flags: keepConnection ? 1 : 0),
                FastCGITestWire.params(id: 1, parameters, recordSize: 100),
            ]
                + stdin + [FastCGITestWire.record(.stdin, id: 1)]
        )
    }

    /// Output records until END_REQUEST.
    func response(from channel: NIOAsyncTestingChannel) async throws -> [FastCGIRecord] {
        var records: [FastCGIRecord] = []
        var wire = ByteBuffer()
        while !records.contains(where: { $0.type == .endRequest }) {
            var chunk = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            wire.writeBuffer(&chunk)
            records = try FastCGITestWire.decodeAll(wire)
        }
        return records
    }

    func protocolStatus(_ records: [FastCGIRecord]) -> UInt8? {
        guard let end = records.last(where: { $0.type == .endRequest })?.content else { return nil }
        return end.getInteger(at: end.readerIndex + 4, as: UInt8.self)
    }

    func appStatus(_ records: [FastCGIRecord]) -> UInt32? {
        guard let end = records.last(where: { $0.type == .endRequest })?.content else { return nil }
        return end.getInteger(at: end.readerIndex, as: UInt32.self)
    }

    func stdout(_ records: [FastCGIRecord]) -> String {
        records.filter { $0.type == .stdout }.map { String(buffer: $0.content) }.joined()
    }

    /// The response's STDOUT ends with `text` and END_REQUEST acknowledges the kept connection.
    func assertKept(
        _ records: [FastCGIRecord], endingWith text: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertTrue(self.stdout(records).hasSuffix(text), file: file, line: line)
        XCTAssertEqual(self.appStatus(records), FastCGIServerCodec.keptConnectionAppStatus, file: file, line: line)
    }

    func waitUntil(_ condition: @escaping () -> Bool) async throws {
        for _ in 0..<500 where !condition() {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertTrue(condition())
    }

    func testAKeptAliveConnectionServesRequestsOneAfterAnother() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        for _ in 0..<3 {
            try await channel.writeInbound(self.request(keepConnection: true))
            let records = try await self.response(from: channel)
            XCTAssertEqual(self.protocolStatus(records), FastCGIProtocolStatus.requestComplete.rawValue)
            self.assertKept(records, endingWith: "Hello world!\n")
            XCTAssertTrue(channel.isActive)
        }
        // Still open, still holding its one slot, and listed as idle.
        try await self.waitUntil { slots.runningCount == 0 }
        XCTAssertEqual(slots.heldCount, 1)
        XCTAssertFalse(slots.tryTake())
        XCTAssertTrue(slots.waitForRoom(orIdle: true, timeout: 0.01))
        _ = try? await channel.finish()
    }

    /// The response is complete while the request body still arrives (the application did not
    /// read it): the rest is read and dropped, and the connection serves the next request.
    func testABodyThatOutlastsItsResponseIsDrainedAndTheConnectionKept() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        let parameters = self.parameters + [(name: "CONTENT_LENGTH", value: "2000")]
        let start = FastCGITestWire.concatenate([
            FastCGITestWire.begin(id: 1, flags: 1), FastCGITestWire.params(id: 1, parameters, recordSize: 100),
            FastCGITestWire.record(.stdin, id: 1, Array(repeating: 0x62, count: 1000)),
        ])
        try await channel.writeInbound(start)
        self.assertKept(try await self.response(from: channel), endingWith: "Hello world!\n")
        // The rest of the body, in later reads; then the next request on the same connection.
        try await channel.writeInbound(FastCGITestWire.record(.stdin, id: 1, Array(repeating: 0x62, count: 1000)))
        try await channel.writeInbound(FastCGITestWire.record(.stdin, id: 1))
        try await channel.writeInbound(self.request(keepConnection: true))
        self.assertKept(try await self.response(from: channel), endingWith: "Hello world!\n")
        XCTAssertTrue(channel.isActive)
        _ = try? await channel.finish()
    }

    /// A streamed response ends with a separate END_REQUEST, a buffered one with its last
    /// STDOUT in the same write: both carry the kept-connection acknowledgement.
    func testAStreamedResponseIsAcknowledgedAsKeptToo() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots) {
            GatewayResponse(body: .stream { writer in try await writer.write(ByteBuffer(string: "streamed\n")) })
        }
        for _ in 0..<2 {
            try await channel.writeInbound(self.request(keepConnection: true))
            self.assertKept(try await self.response(from: channel), endingWith: "streamed\n")
            XCTAssertTrue(channel.isActive)
        }
        _ = try? await channel.finish()
    }

    func testTheLastAllowedRequestOfAConnectionIsNotAcknowledgedAsKept() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        let limit = FastCGIRequestHandler.maximumRequestsPerConnection
        var statuses: [UInt32?] = []
        for _ in 1...limit {
            try await channel.writeInbound(self.request(keepConnection: true))
            statuses.append(self.appStatus(try await self.response(from: channel)))
        }
        try await channel.closeFuture.get()
        XCTAssertEqual(statuses.last, 0)
        XCTAssertEqual(Set(statuses.dropLast()), [FastCGIServerCodec.keptConnectionAppStatus])
        try await self.waitUntil { slots.heldCount == 0 }
    }

    /// A long upload grows the receive buffers NIO keeps per connection; an idle connection would hold them.
    func testAConnectionIsKeptAfterABodyUpToTheLimitAndClosedAfterALongerOne() async throws {
        let limit = FastCGIRequestHandler.maximumBodyBytesOfAKeptConnection
        let slots = ConnectionSlots(capacity: 1)
        // The application reads each body before it answers (it starts as soon as the parameters
        // are complete), so the worker has counted it; the last is longer than it announced.
        let channel = try await self.makeConnection(slots: slots, readingBody: true)
        for bodyBytes in [0, limit] {
            try await channel.writeInbound(self.request(keepConnection: true, bodyBytes: bodyBytes))
            let records = try await self.response(from: channel)
            XCTAssertEqual(self.appStatus(records), FastCGIServerCodec.keptConnectionAppStatus)
            XCTAssertTrue(channel.isActive)
        }
        try await channel.writeInbound(self.request(keepConnection: true, bodyBytes: limit + 1, announcedLength: limit))
        let records = try await self.response(from: channel)
        XCTAssertEqual(self.appStatus(records), 0)
        try await self.waitUntil { !channel.isActive && slots.heldCount == 0 }
    }

    /// The application may answer before reading: the body to come would be drained anyway.
    func testAConnectionIsClosedAfterARequestThatAnnouncesALongBody() async throws {
        let limit = FastCGIRequestHandler.maximumBodyBytesOfAKeptConnection
        for announced in [("CONTENT_LENGTH", String(limit + 1)), ("HTTP_TRANSFER_ENCODING", "chunked")] {
            let slots = ConnectionSlots(capacity: 1)
            let channel = try await self.makeConnection(slots: slots)
            let parameters = self.parameters + [(name: announced.0, value: announced.1)]
            try await channel.writeInbound(
                FastCGITestWire.concatenate([
                    FastCGITestWire.begin(id: 1, flags: 1), FastCGITestWire.params(id: 1, parameters, recordSize: 100),
                    FastCGITestWire.record(.stdin, id: 1, "a short start"), FastCGITestWire.record(.stdin, id: 1),
                ])
            )
            let records = try await self.response(from: channel)
            XCTAssertEqual(self.appStatus(records), 0, "\(announced)")
            try await self.waitUntil { !channel.isActive && slots.heldCount == 0 }
        }
    }

    /// RFC 3875: no `CONTENT_LENGTH` and no `Transfer-Encoding` means no body. The application
    /// gets an empty one; STDIN data that comes anyway is read and dropped, and the connection
    /// serves the next request.
    func testDataForARequestThatAnnouncedNoBodyIsDroppedAndTheConnectionKept() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots) { request in
            var received = 0
            for try await chunk in request.body { received += chunk.readableBytes }
            return GatewayResponse(body: .init(string: "received \(received)\n"))
        }
        for (bodyBytes, announced) in [(1000, 0), (1000, nil), (10, 10)] as [(Int, Int?)] {
            try await channel.writeInbound(
                self.request(keepConnection: true, bodyBytes: bodyBytes, announcedLength: announced))
            self.assertKept(try await self.response(from: channel), endingWith: "received \(announced ?? 0)\n")
            XCTAssertTrue(channel.isActive)
        }
        _ = try? await channel.finish()
    }

    func testWithoutKeepConnectionTheConnectionClosesAndReleasesItsSlot() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        try await channel.writeInbound(self.request(keepConnection: false))
        let records = try await self.response(from: channel)
        XCTAssertEqual(self.appStatus(records), 0)
        try await channel.closeFuture.get()
        try await self.waitUntil { slots.heldCount == 0 }
        XCTAssertNil(slots.takeOldestIdle())
    }

    func testReclaimingAnIdleConnectionSaysOverloadedThenClosesAndReleasesTheSlot() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        try await channel.writeInbound(self.request(keepConnection: true))
        _ = try await self.response(from: channel)
        try await self.waitUntil { slots.runningCount == 0 }

        let idle = slots.takeOldestIdle()
        XCTAssertTrue(idle === channel)
        channel.pipeline.fireUserInboundEventTriggered(ReclaimIdleConnection())
        let refusal = try await self.response(from: channel)
        XCTAssertEqual(refusal.map(\.type), [.endRequest])
        XCTAssertEqual(refusal.first?.requestID, 1)
        XCTAssertEqual(self.protocolStatus(refusal), FastCGIProtocolStatus.overloaded.rawValue)
        try await channel.closeFuture.get()
        try await self.waitUntil { slots.heldCount == 0 }
    }

    func testAConnectionIsNeverReclaimedWhileItsRequestRuns() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        // Before its first request a new connection is not idle: a reclaim request is ignored.
        channel.pipeline.fireUserInboundEventTriggered(ReclaimIdleConnection())
        try await channel.writeInbound(self.request(keepConnection: true))
        let records = try await self.response(from: channel)
        XCTAssertEqual(self.protocolStatus(records), FastCGIProtocolStatus.requestComplete.rawValue)
        XCTAssertTrue(self.stdout(records).hasSuffix("Hello world!\n"))
        XCTAssertTrue(channel.isActive)
        _ = try? await channel.finish()
    }

    func testWhileDrainingAFinishedRequestIsNotAcknowledgedAsKeptAndItsConnectionCloses() async throws {
        let slots = ConnectionSlots(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        XCTAssertTrue(slots.beginDraining().isEmpty)
        try await channel.writeInbound(self.request(keepConnection: true))
        let records = try await self.response(from: channel)
        XCTAssertEqual(self.protocolStatus(records), FastCGIProtocolStatus.requestComplete.rawValue)
        XCTAssertEqual(self.appStatus(records), 0)
        try await channel.closeFuture.get()
        try await self.waitUntil { slots.heldCount == 0 }
    }
    /// Two connections to a worker with one slot: the first runs a response held until `release`,
    /// the second has served one request (so it is a kept connection Apache would resend on).
    /// - Parameter routedRequests: makes `kept` a connection to the worker's own socket.
    private func fullWorker(
        siblingRoom: (@Sendable () -> Int)?, routedRequests: RoutedRequestCount? = nil
    ) async throws -> (
        slots: ConnectionSlots, busy: NIOAsyncTestingChannel, kept: NIOAsyncTestingChannel,
        release: @Sendable () -> Void
    ) {
        let slots = ConnectionSlots(capacity: 1, connectionCapacity: 2, siblingRoom: siblingRoom)
        let (gate, opener) = AsyncStream<Void>.makeStream()
        let busy = try await self.makeConnection(slots: slots) {
            GatewayResponse(
                body: .stream { writer in
                    for await _ in gate { break }
                    try await writer.write(ByteBuffer(string: "held\n"))
                })
        }
        let kept = try await self.makeConnection(slots: slots, routedRequests: routedRequests)
        try await kept.writeInbound(self.request(keepConnection: true))
        _ = try await self.response(from: kept)
        try await self.waitUntil { slots.runningCount == 0 }
        try await busy.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { slots.runningCount == 1 }
        return (slots, busy, kept, { opener.yield() })
    }

    func testARequestOnAKeptConnectionOfAFullWorkerIsTurnedAwayWhileASiblingHasRoom() async throws {
        let (slots, busy, kept, release) = try await self.fullWorker(siblingRoom: { 1 })
        try await kept.writeInbound(self.request(keepConnection: true))
        let refusal = try await self.response(from: kept)
        XCTAssertEqual(refusal.map(\.type), [.endRequest])
        XCTAssertEqual(self.protocolStatus(refusal), FastCGIProtocolStatus.overloaded.rawValue)
        try await kept.closeFuture.get()
        XCTAssertEqual(slots.queuedCount, 0)
        release()
        let held = try await self.response(from: busy)
        XCTAssertTrue(self.stdout(held).hasSuffix("held\n"))
        _ = try? await busy.finish()
    }

    func testARequestOnAKeptConnectionOfAFullWorkerWaitsForTheSlotWhenNoSiblingHasRoom() async throws {
        let (slots, busy, kept, release) = try await self.fullWorker(siblingRoom: { 0 })
        try await kept.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { slots.queuedCount == 1 }
        release()
        let held = try await self.response(from: busy)
        XCTAssertTrue(self.stdout(held).hasSuffix("held\n"))
        let records = try await self.response(from: kept)
        // Apache is told it waits, then that it runs: between the two it may send it again.
        XCTAssertEqual(records.prefix(2).map(\.type), [.requestWaiting, .requestStarted])
        // The first names this worker, for Apache's log line (SG0518).
        XCTAssertEqual(
            records.first.flatMap { $0.content.getInteger(at: $0.content.readerIndex, as: UInt32.self) },
            UInt32(getpid()))
        XCTAssertEqual(records.prefix(2).map(\.content.readableBytes), [4, 0])
        XCTAssertTrue(self.stdout(records).hasSuffix("Hello world!\n"))
        XCTAssertEqual(self.protocolStatus(records), FastCGIProtocolStatus.requestComplete.rawValue)
        try await self.waitUntil { slots.runningCount == 0 && slots.queuedCount == 0 }
        _ = try? await busy.finish()
        _ = try? await kept.finish()
    }

    func testARoutedRequestOfAFullWorkerWaitsForItEvenWhileASiblingHasRoom() async throws {
        let routed = RoutedRequestCount()
        let (slots, busy, kept, release) = try await self.fullWorker(siblingRoom: { 1 }, routedRequests: routed)
        try await kept.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { slots.queuedCount == 1 }
        // The queue's watch turns away only what may go to a sibling: this stays.
        try await Task.sleep(for: .milliseconds(20))
        XCTAssertEqual(slots.queuedCount, 1)
        release()
        _ = try await self.response(from: busy)
        let records = try await self.response(from: kept)
        XCTAssertEqual(records.prefix(2).map(\.type), [.requestWaiting, .requestStarted])
        XCTAssertTrue(self.stdout(records).hasSuffix("Hello world!\n"))
        XCTAssertEqual(routed.value, 2, "each request of the routed connection counted")
        _ = try? await busy.finish()
        _ = try? await kept.finish()
    }

    func testTheGroupSocketsResponsesSetTheRouteAndTheOwnSocketsDoNot() async throws {
        let route = WorkerRoute(token: "t", socketPath: "/s", pid: 7, start: 1)
        let cookie = RouteCookie(name: "R", route: route)
        let slots = ConnectionSlots(capacity: 2)
        let shared = try await self.makeConnection(slots: slots, routeCookie: cookie)
        try await shared.writeInbound(self.request(keepConnection: true))
        let sharedResponse = self.stdout(try await self.response(from: shared))
        XCTAssertTrue(
            sharedResponse.contains("Set-Cookie: R=\(route.text); Path=/; HttpOnly; SameSite=Lax\r\n"), sharedResponse)
        let own = try await self.makeConnection(slots: slots, routedRequests: RoutedRequestCount())
        try await own.writeInbound(self.request(keepConnection: true))
        let ownResponse = self.stdout(try await self.response(from: own))
        XCTAssertFalse(ownResponse.contains("Set-Cookie"), ownResponse)
        _ = try? await shared.finish()
        _ = try? await own.finish()
    }

    func testAQueuedRequestWhoseConnectionClosesGivesUpItsTurn() async throws {
        let (slots, busy, kept, release) = try await self.fullWorker(siblingRoom: { 0 })
        try await kept.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { slots.queuedCount == 1 }
        try await kept.close()
        try await self.waitUntil { slots.queuedCount == 0 }
        release()
        _ = try await self.response(from: busy)
        try await self.waitUntil { slots.runningCount == 0 && slots.heldCount == 1 }
        _ = try? await busy.finish()
    }
}
