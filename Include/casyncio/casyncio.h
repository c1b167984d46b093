/*
 * casyncio.h — umbrella header of the swift-asyncio C core.
 */
#ifndef CASYNCIO_H
#define CASYNCIO_H

#include "object.h"
#include "error.h"
#include "context.h"
#include "future.h"
#include "coro.h"
#include "task.h"
#include "loop.h"
#include "sync.h"
#include "queue.h"
#include "combinators.h"
#include "timeout.h"
#include "taskgroup.h"
#include "io.h"
#include "transport.h"
#include "stream.h"
#include "executor.h"
#include "datagram.h"
#include "signals.h"
#include "files.h"
#include "debug.h"
#include "graph.h"

#endif
