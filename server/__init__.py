"""The reference central queue server (kiosk API, public ticket page, staff
console). It arrives with the sync protocol; standalone kiosks do not need it."""
