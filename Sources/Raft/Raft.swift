enum RaftModule {}
