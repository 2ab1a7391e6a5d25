import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Rolling restarts: the group moves onto a new build of its program one worker at a time. A
/// worker of the new build starts beside the one it replaces, and only once it accepts is the old
/// one told to drain, so the group never has fewer accepting workers than before. The first
/// worker of the new build proves it: one that exits or does not accept within startup-timeout
/// ends the roll, and the old build keeps serving (workers restarted after a crash start from it
/// too, `ProgramImage`).
extension Supervisor {
    /// How long a new build's worker may take to accept when `startup-timeout` is 0.
    static let rollStartupLimit = 60.0
    /// How soon a worker of the new build is looked at again while it starts.
    static let successorCheckInterval = 0.005
    /// A proven build's worker that died starting is tried again this much later.
    static let successorRetryDelay = 1.0

    /// Looks at the program file and the restart file when a look is due.
    func lookForNewBuilds() {
        let events = self.watch.look(
            now: monotonicSeconds(), running: self.image.identity, failed: self.failedIdentity)
        for event in events {
            switch event {
            case .programChanged(let identity): self.requestRoll(.programChanged(identity))
            case .restartFileTouched: self.requestRoll(.restartFile)
            }
        }
    }

    /// Begins a rolling restart, or queues it behind the one under way.
    func requestRoll(_ trigger: RollingRestart.Trigger) {
        guard self.roll == nil else {
            self.pendingRoll = trigger
            self.logger.info("SG1030: rolling restart asked for (\(trigger)) while one runs: it follows")
            return
        }
        self.beginRoll(trigger)
    }

    private func beginRoll(_ trigger: RollingRestart.Trigger) {
        let image: ProgramImage
        do {
            image = try ProgramImage.open(path: self.image.path, generation: self.nextGeneration)
        } catch {
            self.logger.error(
                "SG1023: rolling restart (\(trigger)) of \(self.image.path) failed: \(error); the running workers keep serving"
            )
            return
        }
        if case .programChanged(let identity) = trigger, image.identity != identity {
            // Replaced again since: the watch announces that build once it stops changing.
            image.release()
            return
        }
        self.nextGeneration += 1
        let workers = self.slots.filter { $0.pid != nil }.count
        self.logger.notice(
            "SG1021: rolling restart of \(workers) workers onto \(image.path): \(trigger); each is replaced once a worker of the new build accepts beside it"
        )
        self.roll = RollingRestart(image: image, trigger: trigger, startedAt: monotonicSeconds())
        self.advanceRoll()
    }

    /// One step of the roll under way: promote the new build's worker once it accepts, give up on
    /// one that does not, or start the next.
    func advanceRoll() {
        guard let roll = self.roll else { return }
        let now = monotonicSeconds()
        if let successor = roll.successor {
            // Without a scoreboard there is no telling: taken as accepting.
            if self.scoreboard?.activity(ofWorker: successor.entry)?.isAccepting ?? true {
                self.promote(successor)
            } else {
                let limit = self.settings.startupTimeout > 0 ? self.settings.startupTimeout : Self.rollStartupLimit
                guard now - successor.startedAt >= limit else {
                    self.wakeWithin(Self.successorCheckInterval)
                    return
                }
                kill(successor.pid, SIGKILL)
                self.strays[successor.pid] = successor.entry
                self.roll?.successor = nil
                self.successorFailed(
                    successor,
                    reason:
                        "was not accepting \(formatSeconds(now - successor.startedAt)) after it was spawned (startup-timeout \(formatSeconds(limit)))"
                )
            }
            return
        }
        guard now >= roll.retryAt else {
            self.wakeWithin(roll.retryAt - now)
            return
        }
        let older = self.slots.indices.filter {
            self.slots[$0].pid != nil && self.slots[$0].generation != roll.image.generation
        }
        guard !older.isEmpty else {
            self.finishRoll()
            return
        }
        // The next worker of an older build that accepts; one still starting is waited for.
        guard
            let index = older.first(where: { self.slots[$0].isReady && self.slots[$0].killedBecause == nil }),
            let replaced = self.slots[index].pid
        else {
            self.wakeWithin(Self.startingCheckInterval)
            return
        }
        do {
            guard let (pid, entry) = try self.spawnWorker(slot: index, image: roll.image, lastExit: "rolling restart")
            else {
                // Every scoreboard entry is taken by workers still draining: one is free soon.
                self.wakeWithin(Self.entryWaitInterval)
                return
            }
            self.roll?.successor = RollingRestart.Successor(slot: index, pid: pid, entry: entry, startedAt: now)
            self.logger.info(
                "SG1005: started worker \(index) (pid \(pid)) of the new build, to replace pid \(replaced)")
            self.wakeWithin(Self.successorCheckInterval)
        } catch {
            if roll.isProven {
                self.logger.error("SG1006: cannot start worker \(index) of the new build: \(error); retrying")
                self.roll?.retryAt = now + Self.successorRetryDelay
            } else {
                self.failRoll("cannot start its first worker: \(error)")
            }
        }
    }

    /// The new build's worker accepts: it takes the slot, the old worker drains.
    private func promote(_ successor: RollingRestart.Successor) {
        guard let roll = self.roll else { return }
        let now = monotonicSeconds()
        let index = successor.slot
        let replaced = self.slots[index].pid
        if replaced != nil {
            self.drain(slot: index, cause: .roll, now: now)
            self.scoreboard?.count(RecycleCounter.rollingRestart)
        }
        self.slots[index].pid = successor.pid
        self.slots[index].entry = successor.entry
        self.slots[index].startedAt = successor.startedAt
        self.slots[index].restartAt = nil
        self.slots[index].isReady = true
        self.slots[index].stuck = nil
        self.slots[index].killedBecause = nil
        self.slots[index].sample = ProcessSample()
        self.slots[index].generation = roll.image.generation
        self.slots[index].limits = self.policy.limits(slot: index, firstOfSlot: false)
        self.slots[index].backoff = RestartBackoff()
        self.slots[index].lastExit = "rolling restart"
        self.scoreboard?.setState(.ready, ofWorker: successor.entry)
        self.roll?.successor = nil
        self.roll?.replaced += 1
        if !roll.isProven {
            // Workers started from now on, after a crash too, run the new build.
            self.roll?.isProven = true
            self.image.release()
            self.image = roll.image
        }
        self.logger.info(
            "SG1027: rolling restart: worker \(index) (pid \(replaced.map { "\($0)" } ?? "none")) drains, pid \(successor.pid) of the new build accepts in its place"
        )
        self.advanceRoll()
    }

    /// The new build's worker exited before it accepted.
    func successorExited(reason: ExitReason) {
        guard let successor = self.roll?.successor else { return }
        self.roll?.successor = nil
        self.scoreboard?.retire(worker: successor.entry)
        self.successorFailed(successor, reason: "\(reason) before accepting")
    }

    private func successorFailed(_ successor: RollingRestart.Successor, reason: String) {
        guard let roll = self.roll else { return }
        guard roll.isProven else {
            self.failRoll("its first worker (pid \(successor.pid)) \(reason)")
            return
        }
        self.logger.error(
            "SG1007: worker \(successor.slot) (pid \(successor.pid)) of the new build \(reason); trying again in \(formatSeconds(Self.successorRetryDelay))"
        )
        self.roll?.retryAt = monotonicSeconds() + Self.successorRetryDelay
    }

    private func finishRoll() {
        guard let roll = self.roll else { return }
        self.roll = nil
        let took = "\(Int(((monotonicSeconds() - roll.startedAt) * 1000).rounded())) ms"
        if roll.isProven {
            self.logger.notice(
                "SG1022: rolling restart done: \(roll.replaced) workers replaced by the new build of \(roll.image.path) in \(took)"
            )
        } else {
            // No worker ran to prove it (a transient group at rest): the next one starts it.
            self.image.release()
            self.image = roll.image
            self.logger.notice(
                "SG1022: rolling restart done: no worker was running; the next one starts the new build of \(roll.image.path)"
            )
        }
        self.failedIdentity = nil
        self.beginPendingRoll()
    }

    /// The new build did not start: the roll ends, the old build keeps serving.
    private func failRoll(_ reason: String) {
        guard let roll = self.roll else { return }
        self.roll = nil
        self.failedIdentity = roll.image.identity
        roll.image.release()
        let serving = self.slots.filter { $0.pid != nil }.count
        self.logger.error(
            "SG1023: rolling restart onto \(roll.image.path) failed: \(reason); the \(serving) workers of the running build keep serving, and the next change of the program (or SIGHUP, or the restart file) tries again"
        )
        self.beginPendingRoll()
    }

    private func beginPendingRoll() {
        guard let next = self.pendingRoll else { return }
        self.pendingRoll = nil
        self.beginRoll(next)
    }
}
