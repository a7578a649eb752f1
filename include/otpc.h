/*
 * otpc.h: the whole of otpc, the Erlang/OTP system for C.
 * Each layer has its own header in otpc/; this one includes them all.
 */
#ifndef OTPC_H
#define OTPC_H

#include "otpc/base.h"
#include "otpc/term.h"
#include "otpc/rt.h"
#include "otpc/otp.h"
#include "otpc/logger.h"
#include "otpc/supervisor.h"
#include "otpc/gen_statem.h"
#include "otpc/application.h"
#include "otpc/dist.h"
#include "otpc/code.h"

#endif
