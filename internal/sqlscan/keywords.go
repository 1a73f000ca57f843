package sqlscan

// keyword identifies the SQL words the classifier looks at. Only these words
// are recognised; every other identifier has keyword kwNone. Words are matched
// case-insensitively and only when unquoted ("select" is an identifier).
type keyword uint8

const (
	kwNone keyword = iota
	kwAbort
	kwAll
	kwAlter
	kwAnalyse
	kwAnalyze
	kwAnd
	kwAny
	kwArray
	kwAs
	kwAt
	kwBegin
	kwBetween
	kwBinary
	kwBy
	kwCall
	kwCase
	kwCast
	kwChain
	kwCharacteristics
	kwCheck
	kwCheckpoint
	kwClose
	kwCluster
	kwCollate
	kwComment
	kwCommit
	kwConcurrently
	kwConflict
	kwCopy
	kwCreate
	kwCross
	kwCurrentCatalog
	kwCurrentDate
	kwCurrentRole
	kwCurrentSchema
	kwCurrentTime
	kwCurrentTimestamp
	kwCurrentUser
	kwCursor
	kwCycle
	kwData
	kwDeallocate
	kwDeclare
	kwDefault
	kwDeferrable
	kwDelete
	kwDiscard
	kwDistinct
	kwDo
	kwDrop
	kwElse
	kwEnd
	kwEscape
	kwExcept
	kwExecute
	kwExists
	kwExplain
	kwFalse
	kwFetch
	kwFilter
	kwFirst
	kwFor
	kwForeign
	kwFreeze
	kwFrom
	kwFull
	kwFunction
	kwGlobal
	kwGrant
	kwGroup
	kwGrouping
	kwHaving
	kwHold
	kwIf
	kwIlike
	kwImport
	kwIn
	kwIndex
	kwInner
	kwInsert
	kwIntersect
	kwInto
	kwIs
	kwIsolation
	kwJoin
	kwKey
	kwLateral
	kwLeft
	kwLevel
	kwLike
	kwLimit
	kwListen
	kwLoad
	kwLocal
	kwLocaltime
	kwLocaltimestamp
	kwLock
	kwMaterialized
	kwMerge
	kwMove
	kwNatural
	kwNext
	kwNo
	kwNot
	kwNotify
	kwNull
	kwOf
	kwOffset
	kwOn
	kwOnly
	kwOr
	kwOrder
	kwOrdinality
	kwOuter
	kwOver
	kwOverlaps
	kwPartition
	kwPlacing
	kwPrepare
	kwPrepared
	kwProcedure
	kwProgram
	kwRead
	kwReassign
	kwRecursive
	kwRefresh
	kwReindex
	kwRelease
	kwRepeatable
	kwReplace
	kwReset
	kwReturning
	kwRevoke
	kwRight
	kwRollback
	kwRow
	kwRows
	kwSavepoint
	kwSearch
	kwSecurity
	kwSelect
	kwSerializable
	kwSession
	kwSessionUser
	kwSet
	kwSets
	kwShare
	kwShow
	kwSimilar
	kwSome
	kwStart
	kwStdin
	kwStdout
	kwSystemUser
	kwTable
	kwTablesample
	kwTemp
	kwTemporary
	kwThen
	kwTies
	kwTime
	kwTo
	kwTransaction
	kwTrigger
	kwTrue
	kwTruncate
	kwUnion
	kwUnique
	kwUnlisten
	kwUnlogged
	kwUpdate
	kwUser
	kwUsing
	kwVacuum
	kwValues
	kwVariadic
	kwVerbose
	kwView
	kwWhen
	kwWhere
	kwWindow
	kwWith
	kwWithin
	kwWork
	kwWrite
	kwZone
	numKeywords
)

// keyword properties.
const (
	// kpReserved: a reserved or type/function-name keyword in PostgreSQL; it
	// cannot be an unqualified table name or alias without quotes.
	kpReserved uint8 = 1 << iota
	// kpNoCall: "word (" is syntax (IN (...), OVER (...)), not a function
	// call. For words that can also name a function (unreserved and
	// type/function-name keywords) classifier.syntaxParen has the context.
	kpNoCall
	// kpValue: an SQL value function (CURRENT_TIMESTAMP ...): volatile, read-only.
	kpValue
)

var keywordInfo = [numKeywords]struct {
	name  string
	props uint8
}{
	kwAbort:            {"abort", 0},
	kwAll:              {"all", kpReserved | kpNoCall},
	kwAlter:            {"alter", 0},
	kwAnalyse:          {"analyse", kpReserved},
	kwAnalyze:          {"analyze", kpReserved},
	kwAnd:              {"and", kpReserved | kpNoCall},
	kwAny:              {"any", kpReserved | kpNoCall},
	kwArray:            {"array", kpReserved | kpNoCall},
	kwAs:               {"as", kpReserved | kpNoCall},
	kwAt:               {"at", 0},
	kwBegin:            {"begin", 0},
	kwBetween:          {"between", kpNoCall},
	kwBinary:           {"binary", kpReserved},
	kwBy:               {"by", kpNoCall},
	kwCall:             {"call", 0},
	kwCase:             {"case", kpReserved | kpNoCall},
	kwCast:             {"cast", kpReserved | kpNoCall},
	kwChain:            {"chain", 0},
	kwCharacteristics:  {"characteristics", 0},
	kwCheck:            {"check", kpReserved | kpNoCall},
	kwCheckpoint:       {"checkpoint", 0},
	kwClose:            {"close", 0},
	kwCluster:          {"cluster", 0},
	kwCollate:          {"collate", kpReserved},
	kwComment:          {"comment", 0},
	kwCommit:           {"commit", 0},
	kwConcurrently:     {"concurrently", kpReserved},
	kwConflict:         {"conflict", kpNoCall},
	kwCopy:             {"copy", 0},
	kwCreate:           {"create", kpReserved},
	kwCross:            {"cross", kpReserved},
	kwCurrentCatalog:   {"current_catalog", kpReserved | kpValue},
	kwCurrentDate:      {"current_date", kpReserved | kpValue},
	kwCurrentRole:      {"current_role", kpReserved | kpValue},
	kwCurrentSchema:    {"current_schema", kpReserved | kpValue},
	kwCurrentTime:      {"current_time", kpReserved | kpValue},
	kwCurrentTimestamp: {"current_timestamp", kpReserved | kpValue},
	kwCurrentUser:      {"current_user", kpReserved | kpValue},
	kwCursor:           {"cursor", 0},
	kwCycle:            {"cycle", 0},
	kwData:             {"data", 0},
	kwDeallocate:       {"deallocate", 0},
	kwDeclare:          {"declare", 0},
	kwDefault:          {"default", kpReserved | kpNoCall},
	kwDeferrable:       {"deferrable", kpReserved},
	kwDelete:           {"delete", 0},
	kwDiscard:          {"discard", 0},
	kwDistinct:         {"distinct", kpReserved | kpNoCall},
	kwDo:               {"do", kpReserved},
	kwDrop:             {"drop", 0},
	kwElse:             {"else", kpReserved | kpNoCall},
	kwEnd:              {"end", kpReserved | kpNoCall},
	kwEscape:           {"escape", 0},
	kwExcept:           {"except", kpReserved | kpNoCall},
	kwExecute:          {"execute", 0},
	kwExists:           {"exists", kpNoCall},
	kwExplain:          {"explain", 0},
	kwFalse:            {"false", kpReserved},
	kwFetch:            {"fetch", kpReserved | kpNoCall},
	kwFilter:           {"filter", kpNoCall},
	kwFirst:            {"first", kpNoCall},
	kwFor:              {"for", kpReserved | kpNoCall},
	kwForeign:          {"foreign", kpReserved},
	kwFreeze:           {"freeze", kpReserved},
	kwFrom:             {"from", kpReserved | kpNoCall},
	kwFull:             {"full", kpReserved},
	kwFunction:         {"function", 0},
	kwGlobal:           {"global", 0},
	kwGrant:            {"grant", kpReserved},
	kwGroup:            {"group", kpReserved | kpNoCall},
	kwGrouping:         {"grouping", 0},
	kwHaving:           {"having", kpReserved | kpNoCall},
	kwHold:             {"hold", 0},
	kwIf:               {"if", 0},
	kwIlike:            {"ilike", kpReserved | kpNoCall},
	kwImport:           {"import", 0},
	kwIn:               {"in", kpReserved | kpNoCall},
	kwIndex:            {"index", 0},
	kwInner:            {"inner", kpReserved},
	kwInsert:           {"insert", 0},
	kwIntersect:        {"intersect", kpReserved | kpNoCall},
	kwInto:             {"into", kpReserved | kpNoCall},
	kwIs:               {"is", kpReserved | kpNoCall},
	kwIsolation:        {"isolation", 0},
	kwJoin:             {"join", kpReserved | kpNoCall},
	kwKey:              {"key", 0},
	kwLateral:          {"lateral", kpReserved | kpNoCall},
	kwLeft:             {"left", kpReserved},
	kwLevel:            {"level", 0},
	kwLike:             {"like", kpReserved | kpNoCall},
	kwLimit:            {"limit", kpReserved | kpNoCall},
	kwListen:           {"listen", 0},
	kwLoad:             {"load", 0},
	kwLocal:            {"local", 0},
	kwLocaltime:        {"localtime", kpReserved | kpValue},
	kwLocaltimestamp:   {"localtimestamp", kpReserved | kpValue},
	kwLock:             {"lock", 0},
	kwMaterialized:     {"materialized", 0},
	kwMerge:            {"merge", 0},
	kwMove:             {"move", 0},
	kwNatural:          {"natural", kpReserved},
	kwNext:             {"next", kpNoCall},
	kwNo:               {"no", 0},
	kwNot:              {"not", kpReserved | kpNoCall},
	kwNotify:           {"notify", 0},
	kwNull:             {"null", kpReserved},
	kwOf:               {"of", 0},
	kwOffset:           {"offset", kpReserved | kpNoCall},
	kwOn:               {"on", kpReserved | kpNoCall},
	kwOnly:             {"only", kpReserved | kpNoCall},
	kwOr:               {"or", kpReserved | kpNoCall},
	kwOrder:            {"order", kpReserved | kpNoCall},
	kwOrdinality:       {"ordinality", 0},
	kwOuter:            {"outer", kpReserved},
	kwOver:             {"over", kpNoCall},
	kwOverlaps:         {"overlaps", kpReserved | kpNoCall},
	kwPartition:        {"partition", 0},
	kwPlacing:          {"placing", kpReserved | kpNoCall},
	kwPrepare:          {"prepare", 0},
	kwPrepared:         {"prepared", 0},
	kwProcedure:        {"procedure", 0},
	kwProgram:          {"program", 0},
	kwRead:             {"read", 0},
	kwReassign:         {"reassign", 0},
	kwRecursive:        {"recursive", 0},
	kwRefresh:          {"refresh", 0},
	kwReindex:          {"reindex", 0},
	kwRelease:          {"release", 0},
	kwRepeatable:       {"repeatable", kpNoCall},
	kwReplace:          {"replace", 0},
	kwReset:            {"reset", 0},
	kwReturning:        {"returning", kpReserved | kpNoCall},
	kwRevoke:           {"revoke", 0},
	kwRight:            {"right", kpReserved},
	kwRollback:         {"rollback", 0},
	kwRow:              {"row", kpNoCall},
	kwRows:             {"rows", 0},
	kwSavepoint:        {"savepoint", 0},
	kwSearch:           {"search", 0},
	kwSecurity:         {"security", 0},
	kwSelect:           {"select", kpReserved | kpNoCall},
	kwSerializable:     {"serializable", 0},
	kwSession:          {"session", 0},
	kwSessionUser:      {"session_user", kpReserved | kpValue},
	kwSet:              {"set", kpNoCall},
	kwSets:             {"sets", kpNoCall},
	kwShare:            {"share", 0},
	kwShow:             {"show", 0},
	kwSimilar:          {"similar", kpReserved | kpNoCall},
	kwSome:             {"some", kpReserved | kpNoCall},
	kwStart:            {"start", 0},
	kwStdin:            {"stdin", 0},
	kwStdout:           {"stdout", 0},
	kwSystemUser:       {"system_user", kpReserved | kpValue},
	kwTable:            {"table", kpReserved | kpNoCall},
	kwTablesample:      {"tablesample", kpReserved | kpNoCall},
	kwTemp:             {"temp", 0},
	kwTemporary:        {"temporary", 0},
	kwThen:             {"then", kpReserved | kpNoCall},
	kwTies:             {"ties", 0},
	kwTime:             {"time", 0},
	kwTo:               {"to", kpReserved | kpNoCall},
	kwTransaction:      {"transaction", 0},
	kwTrigger:          {"trigger", 0},
	kwTrue:             {"true", kpReserved},
	kwTruncate:         {"truncate", 0},
	kwUnion:            {"union", kpReserved | kpNoCall},
	kwUnique:           {"unique", kpReserved},
	kwUnlisten:         {"unlisten", 0},
	kwUnlogged:         {"unlogged", 0},
	kwUpdate:           {"update", 0},
	kwUser:             {"user", kpReserved | kpValue},
	kwUsing:            {"using", kpReserved | kpNoCall},
	kwVacuum:           {"vacuum", 0},
	kwValues:           {"values", kpNoCall},
	kwVariadic:         {"variadic", kpReserved | kpNoCall},
	kwVerbose:          {"verbose", kpReserved},
	kwView:             {"view", 0},
	kwWhen:             {"when", kpReserved | kpNoCall},
	kwWhere:            {"where", kpReserved | kpNoCall},
	kwWindow:           {"window", kpReserved | kpNoCall},
	kwWith:             {"with", kpReserved | kpNoCall},
	kwWithin:           {"within", 0},
	kwWork:             {"work", 0},
	kwWrite:            {"write", 0},
	kwZone:             {"zone", kpNoCall},
}

func (k keyword) has(p uint8) bool { return keywordInfo[k].props&p != 0 }

// lower maps ASCII upper case to lower case and leaves every other byte alone
// (PostgreSQL folds only ASCII letters of unquoted identifiers in UTF-8).
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c + 'a' - 'A')
	}
	return
}()

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// nameHash hashes b folded to lower case (FNV-1a).
func nameHash(b []byte) uint32 {
	h := uint32(fnvOffset)
	for _, c := range b {
		h ^= uint32(lower[c])
		h *= fnvPrime
	}
	return h
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// the case of ASCII letters in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower[b[i]] != s[i] {
			return false
		}
	}
	return true
}

const (
	kwTableBits = 9
	kwTableSize = 1 << kwTableBits
	maxKeyword  = 17 // len("current_timestamp")
)

var kwHashTable = func() (t [kwTableSize]keyword) {
	for k := keyword(1); k < numKeywords; k++ {
		name := keywordInfo[k].name
		if name == "" || len(name) > maxKeyword {
			panic("sqlscan: bad keyword table entry")
		}
		h := nameHash([]byte(name)) & (kwTableSize - 1)
		for t[h] != kwNone {
			h = (h + 1) & (kwTableSize - 1)
		}
		t[h] = k
	}
	return
}()

// lookupKeyword returns the keyword spelled by b (any case), or kwNone.
func lookupKeyword(b []byte) keyword {
	if len(b) < 2 || len(b) > maxKeyword {
		return kwNone
	}
	return lookupKeywordHash(b, nameHash(b))
}

// lookupKeywordHash is lookupKeyword with h = nameHash(b) already known.
func lookupKeywordHash(b []byte, h uint32) keyword {
	h &= kwTableSize - 1
	for {
		k := kwHashTable[h]
		if k == kwNone {
			return kwNone
		}
		if equalFold(b, keywordInfo[k].name) {
			return k
		}
		h = (h + 1) & (kwTableSize - 1)
	}
}
