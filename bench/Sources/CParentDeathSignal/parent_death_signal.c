#include "CParentDeathSignal.h"

#include <signal.h>
#include <sys/prctl.h>

void nio_floor_set_parent_death_signal(void) {
    prctl(PR_SET_PDEATHSIG, (unsigned long)SIGTERM, 0, 0, 0);
}
