/*
 * ctx_aarch64.S: context switch for AArch64 (AAPCS64). See ctx.h.
 * Callee-saved: x19-x28, x29 (frame pointer), x30 (link register),
 * d8-d15 and the FPCR.
 */
#if defined(__aarch64__)
/* The callee-saved registers, stored and loaded at sp (176 bytes with
 * the FPCR at #160): the frame ctx.h describes, for both entry points. */
        .macro  save_callee
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        .endm
        .macro  load_callee
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        .endm

        .text
        .globl  otpc__ctx_switch
        .hidden otpc__ctx_switch
        .type   otpc__ctx_switch, %function
        .p2align 4
/* void otpc__ctx_switch(otpc__ctx_t *from (x0), otpc__ctx_t to (x1)) */
otpc__ctx_switch:
        sub     sp, sp, #176
        save_callee
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        load_callee
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        add     sp, sp, #176
        ret
        .size   otpc__ctx_switch, .-otpc__ctx_switch

/* void otpc__ctx_call(void *arg (x0), void (*fn)(void *) (x1),
 *                     void *top (x2), otpc__ctx_t *from (x3))
 * Calls fn(arg) with the stack pointer at top; the caller's context is
 * saved in *from as otpc__ctx_switch saves one (see ctx.h). */
        .globl  otpc__ctx_call
        .hidden otpc__ctx_call
        .type   otpc__ctx_call, %function
        .p2align 4
otpc__ctx_call:
        sub     sp, sp, #176
        save_callee
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x3]
        mov     x19, sp         /* kept by fn, as the ABI has it */
        mov     sp, x2
        blr     x1
        mov     sp, x19
        load_callee
        add     sp, sp, #176
        ret
        .size   otpc__ctx_call, .-otpc__ctx_call

/* First code run on a fresh context: entry in x19, arg in x20. */
        .globl  otpc__ctx_trampoline
        .hidden otpc__ctx_trampoline
        .type   otpc__ctx_trampoline, %function
        .p2align 4
otpc__ctx_trampoline:
        mov     x29, #0
        mov     x30, #0
        mov     x0, x20
        blr     x19
        brk     #0              /* entry must not return */
        .size   otpc__ctx_trampoline, .-otpc__ctx_trampoline
#endif
        .section .note.GNU-stack,"",%progbits
