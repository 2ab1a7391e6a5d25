import Logging

/// Scaling between `processes` and `maximum-processes` workers with the load, and the first
/// worker of a transient group started on demand (`GroupScaling` decides).
extension Supervisor {
    func scale() {
        guard self.scaling.isElastic else { return }
        let now = monotonicSeconds()
        let views = self.slots.indices.map { index -> GroupScaling.Slot in
            let slot = self.slots[index]
            let activity = index < self.lastActivities.count ? self.lastActivities[index] : nil
            guard slot.pid != nil, slot.killedBecause == nil, let activity else {
                return GroupScaling.Slot(isActive: slot.isActive)
            }
            return GroupScaling.Slot(
                isActive: true, isAccepting: activity.isAccepting, room: activity.room, inFlight: activity.inFlight,
                idleSince: max(activity.lastRequestStart, activity.acceptingSince))
        }
        if views.contains(where: { $0.inFlight > 0 }) { self.wakeWithin(GroupScaling.busyCheckInterval) }
        switch self.scaling.decide(slots: views, now: now, nowNanoseconds: monotonicNanoseconds()) {
        case .nothing:
            break
        case .lookAgain(let seconds):
            self.wakeWithin(seconds)
        case .start(let index, let busyFor):
            self.slots[index].restartAt = now
            self.slots[index].backoff = RestartBackoff()
            let workers = self.slots.filter(\.isActive).count
            self.logger.notice(
                "SG1024: scaling up: every request slot of the group's workers busy for \(formatSeconds(busyFor)); starting worker \(index) (\(workers) of maximum-processes \(self.settings.maximumProcesses))"
            )
        case .stop(let index, let idleFor):
            // The roll replaces this slot's worker right now: it goes when idle again.
            guard self.roll?.successor?.slot != index else { return }
            let pid = self.slots[index].pid.map { "\($0)" } ?? "none"
            self.drain(slot: index, cause: .scaleDown, now: now)
            self.scoreboard?.count(RecycleCounter.scaledDown)
            self.slots[index].restartAt = nil
            self.slots[index].lastExit = "scaled down: idle \(formatSeconds(idleFor))"
            let workers = self.slots.filter(\.isActive).count
            self.logger.notice(
                "SG1025: scaling down: worker \(index) (pid \(pid)) served no request for \(formatSeconds(idleFor)) (limit \(formatSeconds(self.scaling.idleLimit))): it drains and exits; \(workers) workers remain"
            )
        }
    }

    /// A connection waits on the socket of a transient group with no worker: start one.
    func connectionWaits() {
        guard self.scaling.startsOnDemand(self.slots.map(\.isActive)), !self.slots.isEmpty else { return }
        self.slots[0].restartAt = monotonicSeconds()
        self.slots[0].backoff = RestartBackoff()
        self.logger.notice(
            "SG1026: a connection waits on the socket of the transient group (processes=0): starting worker 0"
        )
    }
}
