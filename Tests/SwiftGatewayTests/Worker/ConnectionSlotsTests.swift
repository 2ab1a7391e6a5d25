import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

final class ConnectionSlotsTests: XCTestCase {
    /// The connections a test made: an `EmbeddedChannel` and its pipeline hold each other until
    /// it is finished.
    private var channels: [EmbeddedChannel] = []

    private func makeChannel() -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        self.channels.append(channel)
        return channel
    }

    override func tearDown() {
        for channel in self.channels { _ = try? channel.finish() }
        self.channels = []
        super.tearDown()
    }

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

        let channel = self.makeChannel()
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
        let channels = (0..<3).map { _ in self.makeChannel() }
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
        let first = self.makeChannel()
        XCTAssertTrue(slots.connectionBecameIdle(id: slots.makeConnectionID(), channel: first))
        XCTAssertFalse(slots.isDraining)
        let idle = slots.beginDraining()
        XCTAssertEqual(idle.count, 1)
        XCTAssertTrue(idle.first === first)
        XCTAssertTrue(slots.isDraining)
        XCTAssertFalse(slots.connectionBecameIdle(id: slots.makeConnectionID(), channel: self.makeChannel()))
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
        _ slots: ConnectionSlots, connection: Int, kept: Bool, log: NIOLockedValueBox<[String]>,
        channel: (any Channel)? = nil
    ) -> ConnectionSlots.Admission {
        slots.admit(
            connectionID: connection, channel: channel ?? self.makeChannel(), mayTurnAway: kept,
            start: { slot in log.withLockedValue { $0.append("start \(connection)") } },
            turnAway: { log.withLockedValue { $0.append("turn away \(connection)") } }
        )
    }

    func testRequestsBeyondTheSlotsQueueWhenNoSiblingHasRoomAndStartInTurn() {
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(capacity: 2, connectionCapacity: 8, siblingRoom: { 0 })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start(slot: 0))
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .start(slot: 1))
        XCTAssertEqual(self.admit(slots, connection: 3, kept: true, log: log), .queued)
        XCTAssertEqual(self.admit(slots, connection: 4, kept: false, log: log), .queued)
        XCTAssertEqual(slots.runningCount, 2)
        XCTAssertEqual(slots.queuedCount, 2)
        // Every slot runs: no new connection is accepted, though there is room for connections.
        XCTAssertFalse(slots.tryTake())
        XCTAssertFalse(slots.waitForRoom(orIdle: true, timeout: 0.01))

        slots.requestFinished(slot: 0) // its slot goes to the oldest queued request
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 3"])
        XCTAssertEqual(slots.runningCount, 2)
        slots.cancelQueued(connectionID: 4) // its connection closed while it waited
        slots.requestFinished(slot: 1)
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 3"])
        XCTAssertEqual(slots.runningCount, 1)
        XCTAssertTrue(slots.tryTake())
    }

    func testAFullWorkerTurnsAwayARequestOnAKeptConnectionWhileASiblingHasRoom() {
        let log = NIOLockedValueBox<[String]>([])
        let siblingRoom = NIOLockedValueBox(1)
        let slots = ConnectionSlots(capacity: 1, siblingRoom: { siblingRoom.withLockedValue { $0 } })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start(slot: 0))
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
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start(slot: 0))
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .queued)
        slots.requestFinished(slot: 0)
        XCTAssertTrue(log.withLockedValue { $0 }.isEmpty, "the queued request waits")
        XCTAssertTrue(slots.tryTake(), "the accept thread takes the waiting connection")
        XCTAssertEqual(self.admit(slots, connection: 3, kept: false, log: log), .start(slot: 0))
        waiting.withLockedValue { $0 = false }
        slots.requestFinished(slot: 0)
        XCTAssertEqual(log.withLockedValue { $0 }, ["start 2"])
    }

    func testAWorkerWithoutSiblingsQueuesEveryRequestBeyondItsSlots() {
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(capacity: 1)
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start(slot: 0))
        XCTAssertEqual(self.admit(slots, connection: 2, kept: true, log: log), .queued)
    }

    func testQueuedRequestsAreTurnedAwayOnceASiblingHasRoom() {
        let log = NIOLockedValueBox<[String]>([])
        let siblingRoom = NIOLockedValueBox(0)
        let slots = ConnectionSlots(capacity: 1, siblingRoom: { siblingRoom.withLockedValue { $0 } })
        let loop = EmbeddedEventLoop()
        XCTAssertEqual(self.admit(slots, connection: 1, kept: true, log: log), .start(slot: 0))
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
        slots.requestFinished(slot: 0)
        slots.requestFinished(slot: 0)
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
        XCTAssertEqual(self.admit(slots, connection: 1, kept: false, log: log), .start(slot: 0))
        XCTAssertEqual(self.admit(slots, connection: 2, kept: false, log: log), .start(slot: 1))
        XCTAssertEqual(self.admit(slots, connection: 3, kept: false, log: log), .queued)
        slots.requestFinished(slot: 0) // handed to the queued request: still none free
        slots.requestFinished(slot: 1)
        _ = slots.beginDraining()
        slots.requestFinished(slot: 0)
        XCTAssertEqual(published.withLockedValue { $0 }, [2, 1, 0, 1, 0, 0])
    }

    func testEveryRequestStartAndEndIsRecordedWithTheRequestsInFlight() {
        let recorded = NIOLockedValueBox<[String]>([])
        let log = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(
            capacity: 1,
            recordRequest: { event, slot, inFlight in
                recorded.withLockedValue { $0.append("\(event) \(slot) \(inFlight)") }
            })
        XCTAssertEqual(self.admit(slots, connection: 1, kept: false, log: log), .start(slot: 0))
        XCTAssertEqual(self.admit(slots, connection: 2, kept: false, log: log), .queued)
        slots.requestFinished(slot: 0) // the queued request takes the slot over
        slots.requestFinished(slot: 0)
        XCTAssertEqual(recorded.withLockedValue { $0 }, ["started 0 1", "handedOver 0 1", "finished 0 0"])
    }

    // MARK: Slot numbers

    func testEachRunningRequestHoldsADistinctSlotAndAFreedOneIsTakenAgain() {
        let slots = ConnectionSlots(capacity: 3)
        let channel = self.makeChannel()
        XCTAssertEqual(slots.tryStartRequest(on: channel), 0)
        XCTAssertEqual(slots.tryStartRequest(on: channel), 1)
        XCTAssertEqual(slots.tryStartRequest(on: channel), 2)
        XCTAssertNil(slots.tryStartRequest(on: channel), "every slot runs")
        slots.requestFinished(slot: 1)
        XCTAssertEqual(slots.tryStartRequest(on: channel), 1, "the freed slot, and no other")
        slots.requestFinished(slot: 2)
        slots.requestFinished(slot: 0)
        XCTAssertEqual(slots.runningCount, 1)
        // The slot freed last is taken first: its scoreboard cell is the warm one.
        XCTAssertEqual(slots.tryStartRequest(on: channel), 0)
        XCTAssertEqual(slots.tryStartRequest(on: channel), 2)
    }

    func testAQueuedRequestTakesOverTheSlotNumberOfTheRequestThatEnded() {
        let started = NIOLockedValueBox<[String]>([])
        let recorded = NIOLockedValueBox<[String]>([])
        let slots = ConnectionSlots(
            capacity: 2, siblingRoom: { 0 },
            recordRequest: { event, slot, inFlight in
                recorded.withLockedValue { $0.append("\(event) \(slot) \(inFlight)") }
            })
        let first = self.makeChannel()
        let queued = self.makeChannel()
        XCTAssertEqual(slots.tryStartRequest(on: first), 0)
        XCTAssertEqual(slots.tryStartRequest(on: first), 1)
        let admission = slots.admit(
            connectionID: 7, channel: queued, mayTurnAway: false,
            start: { slot in started.withLockedValue { $0.append("7 in slot \(slot)") } }, turnAway: {})
        XCTAssertEqual(admission, .queued)
        slots.requestFinished(slot: 1)
        XCTAssertEqual(started.withLockedValue { $0 }, ["7 in slot 1"])
        XCTAssertEqual(
            recorded.withLockedValue { $0 }, ["started 0 1", "started 1 2", "handedOver 1 2"])
        XCTAssertEqual(slots.runningCount, 2)
        XCTAssertNil(slots.tryStartRequest(on: first), "the handed-over slot is still held")
        slots.requestFinished(slot: 1)
        XCTAssertEqual(slots.tryStartRequest(on: first), 1)
    }

    /// Random starts, hand-overs and ends: a running request's slot is never another's, every
    /// number is within 0..<capacity, and the scoreboard hears of each under the same number.
    func testSlotNumbersStayUniqueAmongRunningRequestsThroughStartsEndsAndHandOvers() {
        struct Generator: RandomNumberGenerator {
            var state: UInt64
            mutating func next() -> UInt64 {
                self.state = self.state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return self.state
            }
        }
        let capacity = 4
        let handedOver = NIOLockedValueBox<[Int]>([])
        let onBoard = NIOLockedValueBox<Set<Int>>([])
        let slots = ConnectionSlots(
            capacity: capacity, siblingRoom: { 0 },
            recordRequest: { event, slot, _ in
                onBoard.withLockedValue { board in
                    switch event {
                    case .started: XCTAssertTrue(board.insert(slot).inserted, "slot \(slot) started twice")
                    case .finished: XCTAssertNotNil(board.remove(slot), "slot \(slot) was not running")
                    case .handedOver: XCTAssertTrue(board.contains(slot))
                    }
                }
            })
        let channel = self.makeChannel()
        var random = Generator(state: 19)
        var running: [Int] = []
        var queued = 0
        for step in 0..<2_000 {
            if running.isEmpty || (Bool.random(using: &random) && running.count + queued < 2 * capacity) {
                let admission = slots.admit(
                    connectionID: step, channel: channel, mayTurnAway: false,
                    start: { slot in handedOver.withLockedValue { $0.append(slot) } }, turnAway: {})
                switch admission {
                case .start(let slot): running.append(slot)
                case .queued: queued += 1
                case .turnAway: XCTFail("no sibling has room")
                }
            } else {
                let slot = running.remove(at: Int.random(in: 0..<running.count, using: &random))
                slots.requestFinished(slot: slot)
                for next in handedOver.withLockedValue({ list in
                    defer { list.removeAll() }; return list
                }) {
                    XCTAssertEqual(next, slot, "a hand-over keeps the number")
                    running.append(next)
                    queued -= 1
                }
            }
            XCTAssertEqual(Set(running).count, running.count, "step \(step): \(running)")
            XCTAssertTrue(running.allSatisfy { (0..<capacity).contains($0) })
            XCTAssertEqual(Set(running), onBoard.withLockedValue { $0 })
            XCTAssertEqual(slots.runningCount, running.count)
        }
    }

    func testTheRequestsTheSupervisorGaveUpOnAreNamedWithTheirConnectionsUntilAcknowledged() {
        // As the scoreboard's cancel cells: set by the supervisor, acknowledged by the worker.
        let cancelled = NIOLockedValueBox<Set<Int>>([])
        let acknowledged = NIOLockedValueBox<[Int]>([])
        let slots = ConnectionSlots(
            capacity: 3, isCancelled: { slot in cancelled.withLockedValue { $0.contains(slot) } },
            acknowledgeCancel: { slot in
                acknowledged.withLockedValue { $0.append(slot) }
                cancelled.withLockedValue { _ = $0.remove(slot) }
            })
        let channels = (0..<3).map { _ in self.makeChannel() }
        for channel in channels { XCTAssertNotNil(slots.tryStartRequest(on: channel)) }
        XCTAssertTrue(slots.cancelledRequests().isEmpty)
        cancelled.withLockedValue { $0 = [0, 2] }
        let named = slots.cancelledRequests()
        XCTAssertEqual(named.map(\.slot), [0, 2])
        XCTAssertTrue(named[0].channel === channels[0])
        XCTAssertTrue(named[1].channel === channels[2])
        XCTAssertFalse(slots.acknowledgeCancel(slot: 1))
        XCTAssertTrue(slots.acknowledgeCancel(slot: 2))
        XCTAssertEqual(acknowledged.withLockedValue { $0 }, [2])
        XCTAssertEqual(slots.cancelledRequests().map(\.slot), [0], "an acknowledged cancel is not named again")
        XCTAssertFalse(slots.acknowledgeCancel(slot: 2))
        // A free slot names nothing, whatever its cell says.
        cancelled.withLockedValue { $0 = [0, 2] }
        slots.requestFinished(slot: 2)
        XCTAssertEqual(slots.cancelledRequests().map(\.slot), [0])
        XCTAssertFalse(slots.acknowledgeCancel(slot: 2))
        XCTAssertFalse(slots.acknowledgeCancel(slot: 99))
        XCTAssertEqual(acknowledged.withLockedValue { $0 }, [2])
        // Without a scoreboard nothing is ever cancelled.
        let alone = ConnectionSlots(capacity: 1)
        XCTAssertEqual(alone.tryStartRequest(on: channels[0]), 0)
        XCTAssertTrue(alone.cancelledRequests().isEmpty)
        XCTAssertFalse(alone.acknowledgeCancel(slot: 0))
    }

    func testADrainDoesNotWaitForRequestsGivenUpOnUntilTheyReturn() {
        let slots = ConnectionSlots(capacity: 2, siblingRoom: { 0 })
        let channel = self.makeChannel()
        XCTAssertTrue(slots.tryTake())
        XCTAssertTrue(slots.tryTake())
        XCTAssertEqual(slots.tryStartRequest(on: channel), 0)
        XCTAssertEqual(slots.tryStartRequest(on: channel), 1)
        slots.requestAbandoned(slot: 1)
        slots.requestAbandoned(slot: 1) // once only
        XCTAssertEqual(slots.abandonedCount, 1)
        XCTAssertEqual(slots.heldCountToDrain, 1)
        // It returns after all and hands its slot to a queued request: that one is waited for.
        let started = NIOLockedValueBox<[Int]>([])
        _ = slots.admit(
            connectionID: 3, channel: channel, mayTurnAway: false,
            start: { slot in started.withLockedValue { $0.append(slot) } }, turnAway: {})
        slots.requestFinished(slot: 1)
        XCTAssertEqual(started.withLockedValue { $0 }, [1])
        XCTAssertEqual(slots.abandonedCount, 0)
        XCTAssertEqual(slots.heldCountToDrain, 2)
        slots.requestAbandoned(slot: 0)
        slots.requestFinished(slot: 0)
        XCTAssertEqual(slots.abandonedCount, 0)
        // A free slot is never abandoned.
        slots.requestAbandoned(slot: 0)
        XCTAssertEqual(slots.abandonedCount, 0)
    }
}
