"""storybench"""
