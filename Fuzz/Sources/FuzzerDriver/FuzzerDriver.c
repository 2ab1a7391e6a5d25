/* Only the declaration of LLVMFuzzerRunDriver (include/FuzzerDriver.h); compiler-rt defines it. */
#include "FuzzerDriver.h"
