import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

import CSwiftGatewayLinux

@testable import SwiftGateway

final class GroupScoreboardTests: XCTestCase {
    func testAWorkerSeesTheRoomItsSiblingsPublishThroughItsOwnMapping() throws {
        let (supervisorBoard, descriptor) = try GroupScoreboard.create(workers: 3, requestSlots: 2, processes: 2)
        defer { close(descriptor) }
        // A worker maps a copy of the descriptor, as it finds it at fd 4, and closes it.
        let copy = dup(descriptor)
        let worker = try XCTUnwrap(GroupScoreboard.adopt(descriptor: copy, workers: 3, requestSlots: 2))
        XCTAssertEqual(fcntl(copy, F_GETFD), -1, "the worker's descriptor is closed after mapping")

        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 0, "a new board has no room anywhere")
        worker.setRoom(5, ofWorker: 0)
        supervisorBoard.setRoom(2, ofWorker: 1)
        supervisorBoard.setRoom(3, ofWorker: 2)
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 5)
        XCTAssertEqual(supervisorBoard.roomOfSiblings(of: 1, heldFor: 0), 8)
        // Room that appeared just now does not count for a patient reader.
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 60_000_000_000), 0)
        // A worker gone (the supervisor clears its entry) has no room; out-of-range indexes are ignored.
        supervisorBoard.setRoom(0, ofWorker: 2)
        supervisorBoard.setRoom(9, ofWorker: 7)
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 2)
    }

    func testADescriptorTooSmallForTheGroupIsRefused() throws {
        let (_, descriptor) = try GroupScoreboard.create(workers: 1, requestSlots: 4, processes: 1)
        defer { close(descriptor) }
        XCTAssertNil(GroupScoreboard.adopt(descriptor: dup(descriptor), workers: 4, requestSlots: 4))
        XCTAssertNil(GroupScoreboard.adopt(descriptor: dup(descriptor), workers: 1, requestSlots: 8))
        // Big enough, but not a board: no magic number.
        let other = sg_shared_memory_create("not-a-board", 64 * 1024)
        XCTAssertGreaterThanOrEqual(other, 0)
        XCTAssertNil(GroupScoreboard.adopt(descriptor: other, workers: 1, requestSlots: 4))
    }

    func testTheSupervisorReadsWhatAWorkerPublishesAboutItsRequests() throws {
        let entries = GroupScoreboard.entryCount(maximumProcesses: 2)
        XCTAssertEqual(entries, 5, "as many again draining, and one for a new build's worker starting")
        let (supervisorBoard, descriptor) = try GroupScoreboard.create(workers: entries, requestSlots: 4, processes: 2)
        defer { close(descriptor) }
        let worker = try XCTUnwrap(
            GroupScoreboard.adopt(descriptor: dup(descriptor), workers: entries, requestSlots: 4))

        XCTAssertEqual(supervisorBoard.activity(ofWorker: 2), WorkerActivity(), "a new entry says nothing yet")
        XCTAssertFalse(try XCTUnwrap(supervisorBoard.activity(ofWorker: 2)).isAccepting)
        let before = monotonicNanoseconds()
        worker.markAccepting(ofWorker: 2)
        let first = worker.requestStarted(slot: 0, inFlight: 1, ofWorker: 2)
        let second = worker.requestStarted(slot: 3, inFlight: 2, ofWorker: 2)
        XCTAssertEqual(supervisorBoard.runningRequests(ofWorker: 2).map(\.slot), [0, 3])
        XCTAssertEqual(supervisorBoard.runningRequests(ofWorker: 2).map(\.started), [first, second])
        worker.requestFinished(slot: 0, inFlight: 1, ofWorker: 2)
        XCTAssertEqual(supervisorBoard.runningRequests(ofWorker: 2).map(\.slot), [3])
        let activity = try XCTUnwrap(supervisorBoard.activity(ofWorker: 2))
        XCTAssertEqual(activity.requestsServed, 1)
        XCTAssertEqual(activity.inFlight, 1)
        XCTAssertTrue(activity.isAccepting)
        XCTAssertGreaterThanOrEqual(activity.lastRequestStart, before)
        XCTAssertEqual(supervisorBoard.activity(ofWorker: 1), WorkerActivity(), "entries are apart")
        XCTAssertNil(supervisorBoard.activity(ofWorker: entries))

        // The supervisor zeroes the entry of a worker that is gone, for the next one.
        worker.setRoom(4, ofWorker: 2)
        supervisorBoard.reset(worker: 2)
        XCTAssertEqual(supervisorBoard.activity(ofWorker: 2), WorkerActivity())
        XCTAssertEqual(worker.roomOfSiblings(of: 0, heldFor: 0), 0)
    }

    func testTheSupervisorCancelsOneRequestNamedByItsStart() throws {
        let (board, descriptor) = try GroupScoreboard.create(workers: 2, requestSlots: 3, processes: 1)
        defer { close(descriptor) }
        let worker = try XCTUnwrap(GroupScoreboard.adopt(descriptor: dup(descriptor), workers: 2, requestSlots: 3))
        let started = worker.requestStarted(slot: 1, inFlight: 1, ofWorker: 0)
        XCTAssertFalse(worker.cancelRequested(slot: 1, ofWorker: 0))
        board.requestCancel(slot: 1, started: started, ofWorker: 0)
        XCTAssertTrue(worker.cancelRequested(slot: 1, ofWorker: 0))
        XCTAssertFalse(worker.cancelRequested(slot: 2, ofWorker: 0))
        XCTAssertFalse(board.cancelAcknowledged(slot: 1, started: started, ofWorker: 0))
        worker.acknowledgeCancel(slot: 1, started: started, ofWorker: 0)
        XCTAssertTrue(board.cancelAcknowledged(slot: 1, started: started, ofWorker: 0))
        XCTAssertFalse(worker.cancelRequested(slot: 1, ofWorker: 0), "acted on once")
        // The next request in the same slot is not the one given up on.
        worker.requestFinished(slot: 1, inFlight: 0, ofWorker: 0)
        XCTAssertFalse(worker.cancelRequested(slot: 1, ofWorker: 0))
        while monotonicNanoseconds() == started {}
        worker.requestStarted(slot: 1, inFlight: 1, ofWorker: 0)
        XCTAssertFalse(worker.cancelRequested(slot: 1, ofWorker: 0))
        // Out of range: ignored.
        board.requestCancel(slot: 3, started: 1, ofWorker: 0)
        XCTAssertFalse(worker.cancelRequested(slot: 3, ofWorker: 0))
    }

    func testTheSupervisorPublishesWhatItKnowsOfEachWorker() throws {
        let (board, descriptor) = try GroupScoreboard.create(workers: 2, requestSlots: 1, processes: 1)
        defer { close(descriptor) }
        let reason = String(repeating: "é", count: 100) // 200 bytes: cut at a character
        board.publishWorker(1, pid: 4242, slot: 0, startedAt: 7, startedUnixMicroseconds: 8, lastExit: reason)
        board.recordSample(residentBytes: 1 << 20, cpuMicroseconds: 1234, ofWorker: 1)
        let snapshot = try XCTUnwrap(board.snapshot(ofWorker: 1))
        XCTAssertEqual(snapshot.pid, 4242)
        XCTAssertEqual(snapshot.state, .starting)
        XCTAssertEqual(snapshot.residentBytes, 1 << 20)
        XCTAssertEqual(snapshot.cpuMicroseconds, 1234)
        XCTAssertEqual(snapshot.lastExit, String(repeating: "é", count: 63))
        board.setState(.ready, ofWorker: 1)
        XCTAssertEqual(board.snapshot(ofWorker: 1)?.state, .ready)
        board.reset(worker: 1)
        XCTAssertEqual(board.snapshot(ofWorker: 1)?.pid, 0)
        XCTAssertEqual(board.snapshot(ofWorker: 1)?.lastExit, "")
    }

    func testWorkerStatesAreTheLayoutsOwn() {
        XCTAssertEqual(WorkerState.empty.rawValue, Int32(SG_WORKER_EMPTY.rawValue))
        XCTAssertEqual(WorkerState.starting.rawValue, Int32(SG_WORKER_STARTING.rawValue))
        XCTAssertEqual(WorkerState.ready.rawValue, Int32(SG_WORKER_READY.rawValue))
        XCTAssertEqual(WorkerState.draining.rawValue, Int32(SG_WORKER_DRAINING.rawValue))
    }
}
