package sqlscan

import "strings"

// defaultWriteFunctions lists functions that write, take locks, change or
// read session state, or only make sense on the primary. An entry ending in
// '*' matches every name with that prefix.
var defaultWriteFunctions = []string{
	// sequences (currval/lastval read this session's state)
	"nextval", "setval", "currval", "lastval",
	// advisory locks
	"pg_advisory_lock*", "pg_advisory_xact_lock*", "pg_try_advisory*", "pg_advisory_unlock*",
	// session state
	"set_config", "setseed", "dblink_connect*", "dblink_disconnect",
	// large objects (writers, and descriptor-based access is session state)
	"lo_*", "loread", "lowrite",
	// notifications, transaction ids, WAL position
	"pg_notify", "txid_current", "txid_current_if_assigned", "pg_current_xact_id",
	"pg_current_xact_id_if_assigned", "pg_current_wal_lsn", "pg_current_wal_insert_lsn",
	"pg_current_wal_flush_lsn", "pg_export_snapshot",
	// server administration
	"pg_switch_wal", "pg_create_restore_point", "pg_terminate_backend", "pg_cancel_backend",
	"pg_reload_conf", "pg_rotate_logfile", "pg_log_backend_memory_contexts", "pg_promote",
	"pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
	"pg_wal_replay_pause", "pg_wal_replay_resume", "pg_stat_reset*", "pg_stat_statements_reset",
	"pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
	"pg_drop_replication_slot", "pg_replication_slot_advance", "pg_copy_physical_replication_slot",
	"pg_copy_logical_replication_slot", "pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
	"pg_logical_emit_message", "pg_replication_origin_*", "pg_file_write", "pg_file_rename",
	"pg_file_unlink", "pg_file_sync",
	// the answer differs on a standby and clients use it to find the primary
	"pg_is_in_recovery",
	// remote writes
	"dblink_exec", "dblink",
}

// DefaultWriteFunctions returns a copy of the default Options.WriteFunctions.
func DefaultWriteFunctions() []string {
	return append([]string(nil), defaultWriteFunctions...)
}

// readOnlyFunctions lists built-in functions that neither write nor depend on
// session state. They match unqualified or pg_catalog-qualified calls.
var readOnlyFunctions = []string{
	// aggregates and window functions
	"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
	"every", "bit_and", "bit_or", "bit_xor", "json_agg", "jsonb_agg", "json_object_agg",
	"jsonb_object_agg", "json_agg_strict", "jsonb_agg_strict", "json_object_agg_strict",
	"jsonb_object_agg_strict", "json_object_agg_unique", "jsonb_object_agg_unique",
	"json_object_agg_unique_strict", "jsonb_object_agg_unique_strict", "json_objectagg",
	"json_arrayagg", "xmlagg", "stddev", "stddev_pop", "stddev_samp", "variance",
	"var_pop", "var_samp", "corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy",
	"regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy",
	"regr_syy", "mode", "percentile_cont", "percentile_disc", "rank", "dense_rank",
	"percent_rank", "cume_dist", "row_number", "ntile", "lag", "lead", "first_value",
	"last_value", "nth_value", "grouping", "cube", "rollup", "range_agg", "range_intersect_agg", "any_value",
	// conditional
	"coalesce", "nullif", "greatest", "least", "num_nulls", "num_nonnulls",
	// math
	"abs", "cbrt", "ceil", "ceiling", "degrees", "div", "exp", "factorial", "floor", "gcd",
	"lcm", "ln", "log", "log10", "min_scale", "mod", "pi", "power", "pow", "radians", "round",
	"scale", "sign", "sqrt", "trim_scale", "trunc", "width_bucket", "acos", "asin", "atan",
	"atan2", "cos", "cot", "sin", "tan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
	"acosd", "asind", "atand", "atan2d", "cosd", "cotd", "sind", "tand", "erf", "erfc",
	// strings and bytes
	"ascii", "btrim", "bit_length", "char_length", "character_length", "chr", "concat",
	"concat_ws", "convert", "convert_from", "convert_to", "decode", "encode", "format",
	"initcap", "left", "length", "lower", "lpad", "ltrim", "md5", "normalize",
	"octet_length", "overlay", "parse_ident", "position", "quote_ident", "quote_literal",
	"quote_nullable", "regexp_count", "regexp_instr", "regexp_like", "regexp_match",
	"regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table",
	"regexp_substr", "repeat", "replace", "reverse", "right", "rpad", "rtrim", "split_part",
	"starts_with", "string_to_array", "string_to_table", "strpos", "substr", "substring",
	"to_ascii", "to_hex", "to_bin", "to_oct", "translate", "trim", "unistr", "upper",
	"sha224", "sha256", "sha384", "sha512", "get_byte", "get_bit", "set_byte", "set_bit",
	"bit_count", "crc32", "crc32c", "casefold", "text", "bpchar", "varchar", "char",
	"varying", "name", "bytea", "like_escape", "similar_escape", "similar_to_escape",
	"texticlike", "textlike",
	// date and time (those that read the clock are in volatileFunctions)
	"date_bin", "date_part", "date_trunc", "extract", "isfinite", "justify_days",
	"justify_hours", "justify_interval", "make_date", "make_interval", "make_time",
	"make_timestamp", "make_timestamptz", "to_timestamp", "to_char", "to_date", "to_number",
	"timezone", "overlaps", "date", "time", "timetz", "timestamp", "timestamptz",
	"interval", "date_add", "date_subtract", "second", "minute", "hour", "day", "month",
	"year",
	// type conversion and constructors
	"int2", "int4", "int8", "int", "integer", "smallint", "bigint", "float4", "float8",
	"float", "numeric", "decimal", "dec", "real", "bool", "boolean", "oid", "regclass",
	"regtype", "regproc", "regprocedure", "regnamespace", "regrole", "regoper",
	"regoperator", "regcollation", "regconfig", "regdictionary", "uuid", "json", "jsonb",
	"xml", "inet", "cidr", "macaddr", "macaddr8", "bit", "varbit", "money", "tsvector",
	"tsquery", "point", "line", "lseg", "box", "path", "polygon", "circle", "int4range",
	"int8range", "numrange", "tsrange", "tstzrange", "daterange", "int4multirange",
	"int8multirange", "nummultirange", "tsmultirange", "tstzmultirange", "datemultirange",
	"row", "array", "cast", "treat", "pg_typeof", "format_type", "to_regclass",
	"to_regproc", "to_regprocedure", "to_regtype", "to_regtypemod", "to_regnamespace",
	"to_regrole", "to_regoper", "to_regoperator", "to_regcollation", "pg_input_is_valid",
	"pg_input_error_info", "pg_collation_for",
	// arrays and set-returning
	"array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
	"array_ndims", "array_position", "array_positions", "array_prepend", "array_remove",
	"array_replace", "array_reverse", "array_sort", "array_to_string", "array_upper",
	"cardinality", "trim_array", "unnest", "generate_series", "generate_subscripts",
	"string_to_array", "array_to_json",
	// ranges
	"lower_inc", "upper_inc", "lower_inf", "upper_inf", "isempty", "range_merge",
	"multirange",
	// json
	"to_json", "to_jsonb", "row_to_json", "json_build_array", "jsonb_build_array",
	"json_build_object", "jsonb_build_object", "json_object", "jsonb_object", "json_array",
	"json_array_elements", "jsonb_array_elements", "json_array_elements_text",
	"jsonb_array_elements_text", "json_array_length", "jsonb_array_length", "json_each",
	"jsonb_each", "json_each_text", "jsonb_each_text", "json_extract_path",
	"jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
	"json_object_keys", "jsonb_object_keys", "json_populate_record", "jsonb_populate_record",
	"json_populate_recordset", "jsonb_populate_recordset", "json_to_record", "jsonb_to_record",
	"json_to_recordset", "jsonb_to_recordset", "json_strip_nulls", "jsonb_strip_nulls",
	"jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_path_exists", "jsonb_path_match",
	"jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
	"jsonb_path_exists_tz", "jsonb_path_match_tz", "jsonb_path_query_tz",
	"jsonb_path_query_array_tz", "jsonb_path_query_first_tz", "jsonb_pretty", "json_typeof",
	"jsonb_typeof", "json_scalar", "json_serialize", "json_exists", "json_query",
	"json_value", "json_table", "jsonb_populate_record_valid", "merge_action",
	// xml (not query_to_xml & co., which run SQL text)
	"xmlelement", "xmlforest", "xmlconcat", "xmlparse", "xmlpi", "xmlroot", "xmlserialize",
	"xmlexists", "xmlattributes", "xml_is_well_formed", "xml_is_well_formed_document",
	"xml_is_well_formed_content", "xpath", "xpath_exists", "xmltable", "xmlcomment",
	"xmltext",
	// text search
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery",
	"websearch_to_tsquery", "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip",
	"numnode", "querytree", "tsvector_to_array", "array_to_tsvector", "ts_delete",
	"ts_filter", "get_current_ts_config", "ts_lexize", "ts_parse", "ts_token_type",
	"ts_debug",
	// network
	"host", "hostmask", "masklen", "netmask", "network", "set_masklen", "abbrev",
	"broadcast", "family", "inet_merge", "inet_same_family", "macaddr8_set7bit", "trunc",
	// geometry
	"area", "center", "diameter", "height", "width", "isclosed", "isopen", "npoints",
	"pclose", "popen", "radius", "slope", "bound_box",
	// catalog information
	"version", "current_database", "current_catalog", "current_schemas", "pg_get_viewdef",
	"pg_get_indexdef", "pg_get_constraintdef", "pg_get_expr", "pg_get_functiondef",
	"pg_get_function_arguments", "pg_get_function_result",
	"pg_get_function_identity_arguments", "pg_get_function_arg_default",
	"pg_get_triggerdef", "pg_get_ruledef", "pg_get_userbyid", "pg_get_serial_sequence",
	"pg_get_statisticsobjdef", "pg_get_partkeydef", "pg_get_partition_constraintdef",
	"pg_get_keywords", "pg_get_catalog_foreign_keys", "pg_table_is_visible",
	"pg_type_is_visible", "pg_function_is_visible", "pg_operator_is_visible",
	"pg_opclass_is_visible", "pg_opfamily_is_visible", "pg_collation_is_visible",
	"pg_conversion_is_visible", "pg_statistics_obj_is_visible", "pg_ts_config_is_visible",
	"pg_ts_dict_is_visible", "pg_ts_parser_is_visible", "pg_ts_template_is_visible",
	"has_table_privilege", "has_schema_privilege", "has_database_privilege",
	"has_column_privilege", "has_function_privilege", "has_sequence_privilege",
	"has_any_column_privilege", "has_foreign_data_wrapper_privilege",
	"has_language_privilege", "has_server_privilege", "has_tablespace_privilege",
	"has_type_privilege", "has_parameter_privilege", "pg_has_role", "row_security_active",
	"obj_description", "col_description", "shobj_description", "pg_describe_object",
	"pg_identify_object", "pg_identify_object_as_address", "pg_get_object_address",
	"pg_size_pretty", "pg_size_bytes", "pg_column_size", "pg_column_compression",
	"pg_encoding_to_char", "pg_char_to_encoding", "pg_client_encoding",
	"pg_encoding_max_length", "pg_tablespace_location", "pg_options_to_table",
	"pg_relation_filenode", "pg_relation_filepath", "pg_filenode_relation",
	"pg_index_column_has_property", "pg_index_has_property", "pg_indexam_has_property",
	"pg_get_indexdef", "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root",
	"pg_basetype", "pg_jit_available", "pg_char_to_encoding", "array_to_string",
	"txid_snapshot_xmin", "txid_snapshot_xmax", "txid_snapshot_xip",
	"txid_visible_in_snapshot", "pg_snapshot_xmin", "pg_snapshot_xmax", "pg_snapshot_xip",
	"pg_visible_in_snapshot", "pg_trigger_depth", "pg_has_role", "acldefault", "aclexplode",
	"makeaclitem", "quote_ident", "pg_get_wal_replay_pause_state",
	// gen_random_uuid & co. are in volatileFunctions
}

// volatileFunctions are read-only functions whose result changes between
// calls or depends on the session or server (volatile or stable in
// PostgreSQL's terms, as far as a cache is concerned).
var volatileFunctions = []string{
	"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday",
	"age", "random", "random_normal", "gen_random_uuid", "uuidv4", "uuidv7",
	"uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "array_shuffle",
	"array_sample", "current_setting", "current_query", "current_schema", "current_user",
	"session_user", "current_role", "pg_backend_pid", "inet_client_addr", "inet_client_port",
	"inet_server_addr", "inet_server_port", "pg_postmaster_start_time", "pg_conf_load_time",
	"pg_last_wal_replay_lsn", "pg_last_wal_receive_lsn", "pg_last_xact_replay_timestamp",
	"pg_sleep", "pg_sleep_for", "pg_sleep_until", "txid_current_snapshot",
	"pg_current_snapshot", "pg_relation_size", "pg_total_relation_size", "pg_table_size",
	"pg_indexes_size", "pg_database_size", "pg_tablespace_size", "pg_listening_channels",
	"pg_notification_queue_usage", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
	"pg_xact_commit_timestamp", "pg_last_committed_xact", "pg_my_temp_schema",
	"pg_is_other_temp_schema", "pg_postmaster_start_time", "to_regclass", "pg_typeof",
	"has_table_privilege", "has_schema_privilege", "has_database_privilege",
	"has_column_privilege", "has_function_privilege", "has_sequence_privilege",
	"has_any_column_privilege", "pg_has_role", "row_security_active",
	"pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible", "pg_get_viewdef",
	"pg_get_indexdef", "pg_get_constraintdef", "pg_get_functiondef", "pg_get_triggerdef",
	"pg_get_ruledef", "pg_get_expr", "pg_get_userbyid", "pg_get_serial_sequence",
	"obj_description", "col_description", "shobj_description", "pg_column_size",
	"to_char", "to_timestamp", "to_date", "timezone", "date_trunc", "date_part", "extract",
	"make_timestamptz", "date_add", "date_subtract", "get_current_ts_config",
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery",
	"websearch_to_tsquery", "ts_headline", "pg_get_wal_replay_pause_state",
}

// nameSet is an immutable set of lower-case names with optional prefix
// entries ("lo_*"), looked up without allocating.
type nameSet struct {
	slots    []string // open addressing on nameHash; len is a power of two
	prefixes []string
	first    [256]bool // first bytes of the prefixes
}

func newNameSet(names ...[]string) *nameSet {
	s := &nameSet{}
	n := 0
	for _, l := range names {
		n += len(l)
	}
	size := 16
	for size < 2*n {
		size <<= 1
	}
	s.slots = make([]string, size)
	for _, l := range names {
		for _, name := range l {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if p, ok := strings.CutSuffix(name, "*"); ok {
				if p == "" {
					continue
				}
				s.prefixes = append(s.prefixes, p)
				s.first[p[0]] = true
				continue
			}
			h := nameHash([]byte(name)) & uint32(size-1)
			for s.slots[h] != "" && s.slots[h] != name {
				h = (h + 1) & uint32(size-1)
			}
			s.slots[h] = name
		}
	}
	return s
}

// has reports whether name, whose nameHash is h, is in the set. Unless
// exact, ASCII case is ignored (name comes from an unquoted identifier);
// with exact, name must match byte for byte (a quoted identifier).
func (s *nameSet) has(name []byte, h uint32, exact bool) bool {
	if s == nil || len(name) == 0 {
		return false
	}
	mask := uint32(len(s.slots) - 1)
	h &= mask
	for {
		e := s.slots[h]
		if e == "" {
			break
		}
		if len(e) == len(name) && (exact && string(name) == e || !exact && equalFold(name, e)) {
			return true
		}
		h = (h + 1) & mask
	}
	if !s.first[lower[name[0]]] {
		return false
	}
	for _, p := range s.prefixes {
		if len(name) >= len(p) && (exact && string(name[:len(p)]) == p || !exact && equalFold(name[:len(p)], p)) {
			return true
		}
	}
	return false
}
