"""mirrors"""
