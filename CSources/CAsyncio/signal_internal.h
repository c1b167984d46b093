/*
 * signal_internal.h — what the loop's close needs from signal.c.
 */
#ifndef CASYNCIO_SIGNAL_INTERNAL_H
#define CASYNCIO_SIGNAL_INTERNAL_H

#include "io_internal.h"

/** At loop close: releases every handler, unblocks what add blocked, and
 *  closes the signalfd (its reader record goes with the fd table). */
void ca_signals_loop_closed(ca_loop *loop, ca_signals *s);

#endif
