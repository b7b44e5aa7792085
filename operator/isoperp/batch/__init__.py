"""Batch building: transitions -> checkpoint header + batch data + withdrawals."""
