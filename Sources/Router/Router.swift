// The Router module; see DESIGN.md, "Modules".
enum RouterModule {}
