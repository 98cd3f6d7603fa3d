// The ShardKV module; see DESIGN.md, "Modules".
enum ShardKVModule {}
