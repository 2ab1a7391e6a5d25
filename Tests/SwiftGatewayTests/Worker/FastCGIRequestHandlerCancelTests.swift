import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

/// A request the supervisor gave up on (request-timeout, `CancelRequest`): answered 504 or
/// aborted, its connection closed, its slot held until its task returns, the others untouched.
extension FastCGIRequestHandlerTests {
    /// Scoreboard cells that say "cancelled" for the slots in `cancelled`, until the worker
    /// acknowledges (which moves the slot to `acknowledged`).
    private struct CancelCells {
        let cancelled = NIOLockedValueBox<Set<Int>>([])
        let acknowledged = NIOLockedValueBox<[Int]>([])

        func cancel(_ slots: Set<Int>) { self.cancelled.withLockedValue { $0 = slots } }
        var acknowledgedSlots: [Int] { self.acknowledged.withLockedValue { $0 } }
    }

    private func slotsWithCancelCells(capacity: Int) -> (ConnectionSlots, CancelCells) {
        let cells = CancelCells()
        let slots = ConnectionSlots(
            capacity: capacity, connectionCapacity: 4,
            isCancelled: { slot in cells.cancelled.withLockedValue { $0.contains(slot) } },
            acknowledgeCancel: { slot in
                cells.cancelled.withLockedValue { _ = $0.remove(slot) }
                cells.acknowledged.withLockedValue { $0.append(slot) }
            })
        return (slots, cells)
    }

    /// What the accept thread does on SIGUSR2.
    private func deliverCancellations(_ slots: ConnectionSlots) {
        for (slot, channel) in slots.cancelledRequests() {
            channel.pipeline.fireUserInboundEventTriggered(CancelRequest(slot: slot))
        }
    }

    private func assertGatewayTimeout(_ records: [FastCGIRecord], file: StaticString = #filePath, line: UInt = #line) {
        let text = self.stdout(records)
        XCTAssertTrue(text.hasPrefix("Status: 504 Gateway Timeout\r\n"), text, file: file, line: line)
        XCTAssertTrue(text.hasSuffix("\r\n\r\nGateway Timeout\n"), text, file: file, line: line)
        XCTAssertEqual(
            self.protocolStatus(records), FastCGIProtocolStatus.requestComplete.rawValue, file: file, line: line)
        XCTAssertEqual(self.appStatus(records), 0, "closing, not kept", file: file, line: line)
    }

    func testARequestGivenUpOnIsAnswered504AndHoldsItsSlotUntilItsTaskReturns() async throws {
        let (slots, cells) = self.slotsWithCancelCells(capacity: 2)
        let parked = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        // Awaits what never comes, deaf to cancellation (the fixture's /never-return).
        let stuck = try await self.makeConnection(slots: slots) { _ in
            await withCheckedContinuation { continuation in parked.withLockedValue { $0 = continuation } }
            return GatewayResponse(body: .init(string: "too late\n"))
        }
        let other = try await self.makeConnection(slots: slots) { _ in
            try await Task.sleep(for: .milliseconds(50))
            return GatewayResponse(body: .init(string: "beside it\n"))
        }
        try await stuck.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { parked.withLockedValue { $0 != nil } }
        try await other.writeInbound(self.request(keepConnection: true))
        cells.cancel([0])
        self.deliverCancellations(slots)

        self.assertGatewayTimeout(try await self.response(from: stuck))
        try await stuck.closeFuture.get()
        XCTAssertEqual(cells.acknowledgedSlots, [0], "the supervisor learns that the loop acted")
        // The request beside it is not touched.
        self.assertKept(try await self.response(from: other), endingWith: "beside it\n")
        XCTAssertTrue(other.isActive)
        // The stuck task still runs: it holds its slot (the supervisor sees that) and its connection.
        try await self.waitUntil { slots.runningCount == 1 }
        XCTAssertEqual(slots.heldCount, 2)
        // A drain would not wait for it (it may never return), only for the other connection.
        XCTAssertEqual(slots.abandonedCount, 1)
        XCTAssertEqual(slots.heldCountToDrain, 1)
        // Once it returns, its answer goes nowhere and everything it held is given back.
        parked.withLockedValue { $0?.resume() }
        try await self.waitUntil { slots.runningCount == 0 && slots.heldCount == 1 }
        XCTAssertEqual(slots.abandonedCount, 0)
        let late = try await stuck.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(late)
        _ = try? await other.finish()
    }

    func testARequestGivenUpOnAfterItsResponseBeganIsAbortedWithoutEndRequest() async throws {
        let (slots, cells) = self.slotsWithCancelCells(capacity: 1)
        let channel = try await self.makeConnection(slots: slots) { _ in
            GatewayResponse(
                body: .stream { writer in
                    try await writer.write(ByteBuffer(string: "partial\n"))
                    while true { try await Task.sleep(for: .seconds(3600)) } // the fixture's /hang
                })
        }
        try await channel.writeInbound(self.request(keepConnection: true))
        var wire = ByteBuffer()
        while !self.stdout(try FastCGITestWire.decodeAll(wire)).hasSuffix("partial\n") {
            var chunk = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            wire.writeBuffer(&chunk)
        }
        cells.cancel([0])
        self.deliverCancellations(slots)
        try await channel.closeFuture.get()
        XCTAssertEqual(cells.acknowledgedSlots, [0])
        while let chunk = try await channel.readOutbound(as: ByteBuffer.self) { wire.writeImmutableBuffer(chunk) }
        XCTAssertFalse(try FastCGITestWire.decodeAll(wire).contains { $0.type == .endRequest })
        // Cancelled, its sleep throws: the task returns and gives everything back.
        try await self.waitUntil { slots.runningCount == 0 && slots.heldCount == 0 }
    }

    /// `executor=thread-pool`: an application that never suspends holds a pool thread, and the
    /// connection's event loop is free to answer for it.
    func testOnTheGlobalPoolASpinningRequestIsStillAnswered504() async throws {
        let (slots, cells) = self.slotsWithCancelCells(capacity: 1)
        let spinning = NIOLockedValueBox(false)
        let stop = NIOLockedValueBox(false)
        let channel = try await self.makeConnection(slots: slots, startsOnGlobalPool: true) { _ in
            spinning.withLockedValue { $0 = true }
            while !stop.withLockedValue({ $0 }) {} // no suspension point: no cancellation either
            return GatewayResponse(body: .init(string: "too late\n"))
        }
        try await channel.writeInbound(self.request(keepConnection: true))
        try await self.waitUntil { spinning.withLockedValue { $0 } }
        cells.cancel([0])
        self.deliverCancellations(slots)
        self.assertGatewayTimeout(try await self.response(from: channel))
        try await channel.closeFuture.get()
        XCTAssertEqual(cells.acknowledgedSlots, [0])
        XCTAssertEqual(slots.runningCount, 1)
        stop.withLockedValue { $0 = true }
        try await self.waitUntil { slots.runningCount == 0 && slots.heldCount == 0 }
    }

    /// The cell of a slot may still say "cancelled" for a request that has returned since (or
    /// the event comes late): a later request of the connection, in that slot or not, runs on.
    func testACancellationForARequestThatReturnedChangesNothing() async throws {
        let (slots, cells) = self.slotsWithCancelCells(capacity: 1)
        let channel = try await self.makeConnection(slots: slots)
        try await channel.writeInbound(self.request(keepConnection: true))
        self.assertKept(try await self.response(from: channel), endingWith: "Hello world!\n")
        try await self.waitUntil { slots.runningCount == 0 }
        cells.cancel([0])
        self.deliverCancellations(slots) // nothing runs: nothing is named
        channel.pipeline.fireUserInboundEventTriggered(CancelRequest(slot: 0)) // a late event
        try await channel.writeInbound(self.request(keepConnection: true))
        self.assertKept(try await self.response(from: channel), endingWith: "Hello world!\n")
        XCTAssertTrue(channel.isActive)
        XCTAssertEqual(cells.acknowledgedSlots, [])
        _ = try? await channel.finish()
    }
}
