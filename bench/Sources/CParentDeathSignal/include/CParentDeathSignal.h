// prctl(2) is variadic, which Swift cannot call.
#ifndef C_PARENT_DEATH_SIGNAL_H
#define C_PARENT_DEATH_SIGNAL_H

/// SIGTERM to this process when the thread that started it ends. Call it on the main thread:
/// the setting is lost when the thread that made it exits.
void nio_floor_set_parent_death_signal(void);

#endif
