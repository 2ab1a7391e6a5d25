import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

final class ConnectionSlotsTests: XCTestCase {
    func testSlotsAreTakenUpToTheCapacityAndReleased() {
        let slots = ConnectionSlots(capacity: 2)
        XCTAssertTrue(slots.tryTake())
        XCTAssertTrue(slots.tryTake())
        XCTAssertFalse(slots.tryTake())
        XCTAssertEqual(slots.heldCount, 2)
        slots.release()
        XCTAssertTrue(slots.tryTake())
    }

    func testAFullWorkerHasNoRoomUnlessAnIdleConnectionCanBeReclaimed() {
        let slots = ConnectionSlots(capacity: 1)
        XCTAssertTrue(slots.tryTake())
        XCTAssertFalse(slots.waitForRoom(orIdle: true, timeout: 0.01))

        let channel = EmbeddedChannel()
        let id = slots.makeConnectionID()
        XCTAssertTrue(slots.connectionBecameIdle(id: id, channel: channel))
        XCTAssertTrue(slots.waitForRoom(orIdle: true, timeout: 0.01))
        XCTAssertFalse(slots.waitForRoom(orIdle: false, timeout: 0.01))

        XCTAssertTrue(slots.takeOldestIdle() === channel)
        XCTAssertNil(slots.takeOldestIdle())
        XCTAssertFalse(slots.waitForRoom(orIdle: true, timeout: 0.01))
    }

    func testIdleConnectionsAreReclaimedOldestFirstAndLeaveTheListWhenBusy() {
        let slots = ConnectionSlots(capacity: 3)
        let channels = (0..<3).map { _ in EmbeddedChannel() }
        let ids = channels.map { _ in slots.makeConnectionID() }
        XCTAssertEqual(Set(ids).count, 3)
        for (id, channel) in zip(ids, channels) {
            XCTAssertTrue(slots.connectionBecameIdle(id: id, channel: channel))
        }
        slots.connectionLeftIdle(id: ids[0])
        XCTAssertTrue(slots.takeOldestIdle() === channels[1])
        XCTAssertTrue(slots.takeOldestIdle() === channels[2])
        XCTAssertNil(slots.takeOldestIdle())
    }

    func testAReleaseWakesAWaiter() async {
        let slots = ConnectionSlots(capacity: 1)
        XCTAssertTrue(slots.tryTake())
        async let room = Task.detached { slots.waitForRoom(orIdle: false, timeout: 10) }.value
        slots.release()
        let found = await room
        XCTAssertTrue(found)
    }

    func testDrainingHandsOverTheIdleConnectionsAndKeepsNoNewOnes() {
        let slots = ConnectionSlots(capacity: 2)
        let first = EmbeddedChannel()
        XCTAssertTrue(slots.connectionBecameIdle(id: slots.makeConnectionID(), channel: first))
        XCTAssertFalse(slots.isDraining)
        let idle = slots.beginDraining()
        XCTAssertEqual(idle.count, 1)
        XCTAssertTrue(idle.first === first)
        XCTAssertTrue(slots.isDraining)
        XCTAssertFalse(slots.connectionBecameIdle(id: slots.makeConnectionID(), channel: EmbeddedChannel()))
        XCTAssertNil(slots.takeOldestIdle())
    }

    func testAFullWorkerGivesUpAFinishedConnectionWhileAnotherWaitsInTheBacklog() {
        let waiting = NIOLockedValueBox(true)
        let slots = ConnectionSlots(capacity: 2) { waiting.withLockedValue { $0 } }
        XCTAssertTrue(slots.tryTake())
        // A free slot: the accept thread takes the waiting connection, this one stays.
        XCTAssertTrue(slots.shouldKeepFinishedConnection())
        XCTAssertTrue(slots.tryTake())
        XCTAssertFalse(slots.shouldKeepFinishedConnection())
        waiting.withLockedValue { $0 = false }
        XCTAssertTrue(slots.shouldKeepFinishedConnection())
        _ = slots.beginDraining()
        XCTAssertFalse(slots.shouldKeepFinishedConnection())
    }

    func testRunningRequestsAreCounted() {
        let slots = ConnectionSlots(capacity: 4)
        slots.requestStarted()
        slots.requestStarted()
        slots.requestFinished()
        XCTAssertEqual(slots.runningCount, 1)
    }
}
