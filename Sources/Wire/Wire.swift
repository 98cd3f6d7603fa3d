// The Wire module; see DESIGN.md, "Modules".
enum WireModule {}
