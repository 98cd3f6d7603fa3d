// The ShardCtrler module; see DESIGN.md, "Modules".
enum ShardCtrlerModule {}
