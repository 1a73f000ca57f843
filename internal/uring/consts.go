//go:build linux

package uring

// Constants from the Linux io_uring UAPI (include/uapi/linux/io_uring.h).
// Only what this project uses, plus close neighbours, is listed.

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll       uint32 = 1 << 0
	SetupSQPoll       uint32 = 1 << 1
	SetupSQAff        uint32 = 1 << 2
	SetupCQSize       uint32 = 1 << 3
	SetupClamp        uint32 = 1 << 4
	SetupAttachWQ     uint32 = 1 << 5
	SetupRDisabled    uint32 = 1 << 6
	SetupSubmitAll    uint32 = 1 << 7
	SetupCoopTaskrun  uint32 = 1 << 8
	SetupTaskrunFlag  uint32 = 1 << 9
	SetupSQE128       uint32 = 1 << 10
	SetupCQE32        uint32 = 1 << 11
	SetupSingleIssuer uint32 = 1 << 12
	SetupDeferTaskrun uint32 = 1 << 13
	SetupNoMmap       uint32 = 1 << 14
	SetupRegisteredFD uint32 = 1 << 15
	SetupNoSQArray    uint32 = 1 << 16
)

// Feature flags (io_uring_params.features), filled in by the kernel.
const (
	FeatSingleMmap     uint32 = 1 << 0
	FeatNoDrop         uint32 = 1 << 1
	FeatSubmitStable   uint32 = 1 << 2
	FeatRWCurPos       uint32 = 1 << 3
	FeatCurPersonality uint32 = 1 << 4
	FeatFastPoll       uint32 = 1 << 5
	FeatPoll32Bits     uint32 = 1 << 6
	FeatSQPollNonfixed uint32 = 1 << 7
	FeatExtArg         uint32 = 1 << 8
	FeatNativeWorkers  uint32 = 1 << 9
	FeatRsrcTags       uint32 = 1 << 10
	FeatCQESkip        uint32 = 1 << 11
	FeatLinkedFile     uint32 = 1 << 12
	FeatRegRegRing     uint32 = 1 << 13
	FeatRecvSendBundle uint32 = 1 << 14
	FeatMinTimeout     uint32 = 1 << 15
)

// Opcodes (io_uring_sqe.opcode).
const (
	OpNop            uint8 = 0
	OpReadv          uint8 = 1
	OpWritev         uint8 = 2
	OpFsync          uint8 = 3
	OpReadFixed      uint8 = 4
	OpWriteFixed     uint8 = 5
	OpPollAdd        uint8 = 6
	OpPollRemove     uint8 = 7
	OpSyncFileRange  uint8 = 8
	OpSendmsg        uint8 = 9
	OpRecvmsg        uint8 = 10
	OpTimeout        uint8 = 11
	OpTimeoutRemove  uint8 = 12
	OpAccept         uint8 = 13
	OpAsyncCancel    uint8 = 14
	OpLinkTimeout    uint8 = 15
	OpConnect        uint8 = 16
	OpFallocate      uint8 = 17
	OpOpenat         uint8 = 18
	OpClose          uint8 = 19
	OpFilesUpdate    uint8 = 20
	OpStatx          uint8 = 21
	OpRead           uint8 = 22
	OpWrite          uint8 = 23
	OpFadvise        uint8 = 24
	OpMadvise        uint8 = 25
	OpSend           uint8 = 26
	OpRecv           uint8 = 27
	OpOpenat2        uint8 = 28
	OpEpollCtl       uint8 = 29
	OpSplice         uint8 = 30
	OpProvideBuffers uint8 = 31
	OpRemoveBuffers  uint8 = 32
	OpTee            uint8 = 33
	OpShutdown       uint8 = 34
	OpRenameat       uint8 = 35
	OpUnlinkat       uint8 = 36
	OpMkdirat        uint8 = 37
	OpSymlinkat      uint8 = 38
	OpLinkat         uint8 = 39
	OpMsgRing        uint8 = 40
	OpFsetxattr      uint8 = 41
	OpSetxattr       uint8 = 42
	OpFgetxattr      uint8 = 43
	OpGetxattr       uint8 = 44
	OpSocket         uint8 = 45
	OpUringCmd       uint8 = 46
	OpSendZC         uint8 = 47
	OpSendmsgZC      uint8 = 48
	OpReadMultishot  uint8 = 49
	OpWaitid         uint8 = 50
	OpFutexWait      uint8 = 51
	OpFutexWake      uint8 = 52
	OpFutexWaitv     uint8 = 53
	OpFixedFdInstall uint8 = 54
	OpFtruncate      uint8 = 55
	OpBind           uint8 = 56
	OpListen         uint8 = 57
)

// SQE flags (io_uring_sqe.flags).
const (
	SQEFixedFile      uint8 = 1 << 0
	SQEIODrain        uint8 = 1 << 1
	SQEIOLink         uint8 = 1 << 2
	SQEIOHardlink     uint8 = 1 << 3
	SQEAsync          uint8 = 1 << 4
	SQEBufferSelect   uint8 = 1 << 5
	SQECQESkipSuccess uint8 = 1 << 6
)

// CQE flags (io_uring_cqe.flags).
const (
	CQEFBuffer       uint32 = 1 << 0
	CQEFMore         uint32 = 1 << 1
	CQEFSockNonempty uint32 = 1 << 2
	CQEFNotif        uint32 = 1 << 3
	CQEFBufMore      uint32 = 1 << 4
	CQEBufferShift          = 16
)

// SQ ring flags (read from the shared SQ ring).
const (
	SQNeedWakeup uint32 = 1 << 0
	SQCQOverflow uint32 = 1 << 1
	SQTaskrun    uint32 = 1 << 2
)

// io_uring_enter flags.
const (
	EnterGetEvents      uint32 = 1 << 0
	EnterSQWakeup       uint32 = 1 << 1
	EnterSQWait         uint32 = 1 << 2
	EnterExtArg         uint32 = 1 << 3
	EnterRegisteredRing uint32 = 1 << 4
)

// Send/recv flags stored in sqe.ioprio.
const (
	RecvSendPollFirst uint16 = 1 << 0
	RecvMultishot     uint16 = 1 << 1
	RecvSendFixedBuf  uint16 = 1 << 2
)

// Accept flags stored in sqe.ioprio.
const (
	AcceptMultishot uint16 = 1 << 0
	AcceptDontwait  uint16 = 1 << 1
	AcceptPollFirst uint16 = 1 << 2
)

// Timeout flags (sqe.timeout_flags).
const (
	TimeoutAbs               uint32 = 1 << 0
	TimeoutUpdate            uint32 = 1 << 1
	TimeoutBoottime          uint32 = 1 << 2
	TimeoutRealtime          uint32 = 1 << 3
	TimeoutLinkTimeoutUpdate uint32 = 1 << 4
	TimeoutETimeSuccess      uint32 = 1 << 5
	TimeoutMultishot         uint32 = 1 << 6
)

// Cancel flags (sqe.cancel_flags).
const (
	CancelAll      uint32 = 1 << 0
	CancelFD       uint32 = 1 << 1
	CancelAny      uint32 = 1 << 2
	CancelFDFixed  uint32 = 1 << 3
	CancelUserData uint32 = 1 << 4
	CancelOp       uint32 = 1 << 5
)

// MSG_RING commands (sqe.addr) and flags (sqe.msg_ring_flags).
const (
	msgData   = 0
	msgSendFD = 1

	MsgRingCQESkip   uint32 = 1 << 0
	MsgRingFlagsPass uint32 = 1 << 1
)

// FileIndexAlloc asks the kernel to pick a free direct slot (file_index).
// Prefer explicit slots: see doc.go.
const FileIndexAlloc uint32 = ^uint32(0)

// FilesSkip, in RegisterFilesUpdate, leaves a slot unchanged; -1 clears it.
const FilesSkip int32 = -2

// io_uring_register opcodes.
const (
	regRegisterFiles      = 2
	regUnregisterFiles    = 3
	regRegisterEventfd    = 4
	regUnregisterEventfd  = 5
	regFilesUpdate        = 6
	regEventfdAsync       = 7
	regProbe              = 8
	regRegisterFiles2     = 13
	regRegisterPbufRing   = 22
	regUnregisterPbufRing = 23
	regSyncCancel         = 24
	regRegisterRingFds    = 20
	regUnregisterRingFds  = 21
)

const (
	rsrcRegisterSparse = 1 << 0
	opSupported        = 1 << 0
)

// mmap offsets.
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// maxFixedFiles is the kernel's own cap on a ring's file table (1<<20).
const maxFixedFiles = 1 << 20
