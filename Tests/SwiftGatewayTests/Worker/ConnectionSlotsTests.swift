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

    private func admit(
        _ slots: ConnectionSlots, connection: Int, kept: Bool, log: NIOLockedValueBox<[String]>
    ) -> ConnectionSlots.Admission {
        slots.admit(
            connectionID: connection, mayTurnAway: kept,
            start: { log.withLockedValue { $0.append("start \(connection)") } },
            turnAway: { log.withLockedValue { $0.append("turn away \(connection)") } }
        )
    }

    func testRequestsBeyondTheSlotsQueueWhenNoSiblingHasRoomAndStartInTurn() {
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(capacity: 2, connectionCapacity: 8, siblingRoom: { 0 })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 3, kept: true, log: log), .queued)
        XCTAssertEqual(self.admit(slots, connection: 4, kept: false, log: log), .queued)
        XCTAssertEqual(slots.runningCount, 2)
        XCTAssertEqual(slots.queuedCount, 2)
        // Every slot runs: no new connection is accepted, though there is room for connections.
        XCTAssertFalse(slots.tryTake())
        XCTAssertFalse(slots.waitForRoom(orIdle: true, timeout: 0.01))

        slots.requestFinished() // its slot goes to the oldest queued request
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 3"])
        XCTAssertEqual(slots.runningCount, 2)
        slots.cancelQueued(connectionID: 4) // its connection closed while it waited
        slots.requestFinished()
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 3"])
        XCTAssertEqual(slots.runningCount, 1)
        XCTAssertTrue(slots.tryTake())
    }

    func testAFullWorkerTurnsAwayARequestOnAKeptConnectionWhileASiblingHasRoom() {
        let log = NIOLockedValueBox<[String]>([])
        let siblingRoom = NIOLockedValueBox(1)
        let slots = ConnectionSlots(capacity: 1, siblingRoom: { siblingRoom.withLockedValue { $0 } })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .turnAway)
        // The first request of a new connection is not sent again by Apache: it waits.
        XCTAssertEqual(self.admit(slots, connection: 3, kept: false, log: log), .queued)
        siblingRoom.withLockedValue { $0 = 0 }
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .queued)
        XCTAssertEqual(slots.queuedCount, 2)
        XCTAssertTrue(log.withLockedValue { $0 }.isEmpty)
    }

    func testAFreedSlotGoesToAConnectionWaitingInTheBacklogBeforeTheQueue() {
        let log = NIOLockedValueBox<[String]>([])
        let waiting = NIOLockedValueBox(true)
        let slots = ConnectionSlots(
            capacity: 1, connectionCapacity: 4, connectionsWaiting: { waiting.withLockedValue { $0 } })
        XCTAssertTrue(slots.tryTake())
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .queued)
        slots.requestFinished()
        XCTAssertTrue(log.withLockedValue { $0 }.isEmpty, "the queued request waits")
        XCTAssertTrue(slots.tryTake(), "the accept thread takes the waiting connection")
        XCTAssertEqual(self.admit(slots, connection: 3, kept: false, log: log), .start)
        waiting.withLockedValue { $0 = false }
        slots.requestFinished()
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 2"])
    }

    func testAWorkerWithoutSiblingsQueuesEveryRequestBeyondItsSlots() {
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(capacity: 1)
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .queued)
    }

    func testQueuedRequestsAreTurnedAwayOnceASiblingHasRoom() {
        let log = NIOLockedValueBox<[String]>([])
        let siblingRoom = NIOLockedValueBox(0)
        let slots = ConnectionSlots(capacity: 1, siblingRoom: { siblingRoom.withLockedValue { $0 } })
        let loop = EmbeddedEventLoop()
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start)
        for connection in 2...5 {
            XCTAssertEqual(self.admit(slots, connection: connection, kept: connection != 3, log: log), .queued)
        }
        slots.watchQueue(on: loop)
        loop.advanceTime(by: ConnectionSlots.queueWatchInterval * 3)
        XCTAssertTrue(log.withLockedValue { $0 }.isEmpty)
        // Room for two: the two oldest that Apache would send again go; the new connection's stays.
        siblingRoom.withLockedValue { $0 = 2 }
        loop.advanceTime(by: ConnectionSlots.queueWatchInterval)
        XCTAssertEqual(log.withLockedValue { $0 }, ["turn away 2", "turn away 4"])
        XCTAssertEqual(slots.queuedCount, 2)
        siblingRoom.withLockedValue { $0 = 0 }
        slots.requestFinished()
        slots.requestFinished()
        XCTAssertEqual(log.withLockedValue { $0 }, ["turn away 2", "turn away 4", "start 3", "start 5"])
        // Nothing queued: the watch has stopped.
        siblingRoom.withLockedValue { $0 = 5 }
        loop.advanceTime(by: ConnectionSlots.queueWatchInterval * 3)
        XCTAssertEqual(log.withLockedValue { $0 }.count, 4)
        try? loop.syncShutdownGracefully()
    }

    func testTheFreeSlotsArePublishedAndNoneWhileDraining() {
        let published = NIOLockedValueBox<[Int]>([])
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(capacity: 2, publishRoom: { room in published.withLockedValue { $0.append(room) } })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: false, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: false, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 3, kept: false, log: log), .queued)
        slots.requestFinished() // handed to the queued request: still none free
        slots.requestFinished()
        _ = slots.beginDraining()
        slots.requestFinished()
        XCTAssertEqual(published.withLockedValue { $0 }, [2, 1, 0, 1, 0, 0])
    }

    func testEveryRequestStartAndEndIsRecordedWithTheRequestsInFlight() {
        let recorded = NIOLockedValueBox<[String]>([])
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(
            capacity: 1,
            recordRequest: { event, inFlight in recorded.withLockedValue { $0.append("\(event) \(inFlight)") } })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: false, log: log), .start)
        XCTAssertEqual(self.admit(slots, connection: 2, kept: false, log: log), .queued)
        slots.requestFinished() // the queued request takes the slot over
        slots.requestFinished()
        XCTAssertEqual(recorded.withLockedValue { $0 }, ["started 1", "handedOver 1", "finished 0"])
    }
}
